"""Helpers for attestation tests: self-signed TLS certificates, the fake dstack agent and the
fake upstream, and a privchat that serves HTTPS and attests through the real dstack SDK."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privchat.config import Config
from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud
from privchat.runtime import Running
from tests.conftest import start_server
from tests.fakes.dstack_agent import FakeDstackAgent, serve_fake_dstack_agent


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_tls_files(directory: Path, name: str = "privchat") -> TlsFiles:
    """A fresh P-256 key and a self-signed certificate for 127.0.0.1 / localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / f"{name}.crt", directory / f"{name}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclass
class AttestedPrivchat:
    running: Running
    agent: FakeDstackAgent
    cloud: FakeCloud
    tls: TlsFiles | None

    @property
    def url(self) -> str:
        return self.running.url


async def start_attested(
    nursery: trio.Nursery,
    config: Config,
    tmp_path: Path,
    *,
    tls: bool = True,
    agent: FakeDstackAgent | None = None,
    **changes: object,
) -> AttestedPrivchat:
    """privchat outside DEV: the fake agent via DSTACK_SIMULATOR_ENDPOINT, the fake upstream,
    and (by default) HTTPS on a certificate generated here."""
    agent = agent or FakeDstackAgent()
    endpoint = await nursery.start(serve_fake_dstack_agent, agent)
    cloud = FakeCloud(api_key="sk-test")
    cloud_url = await nursery.start(serve_fake_cloud, cloud)
    files = make_tls_files(tmp_path / "tls") if tls else None
    settings: dict[str, object] = {
        "dev": False,
        "dstack_simulator_endpoint": endpoint,
        "openai_base_url": cloud_url,
        "openai_api_key": "sk-test",
    }
    if files is not None:
        settings.update(tls_cert_file=files.cert, tls_key_file=files.key)
    settings.update(changes)
    running = await start_server(nursery, config, **settings)
    return AttestedPrivchat(running, agent, cloud, files)
