"""A §5.2-shaped attestation report with a structurally valid (fake) TDX quote. Pure."""

from __future__ import annotations

import hashlib
import json
from typing import Any

QUOTE_REPORT_DATA_OFFSET = 568  # TDX quote v4: 48-byte header + 520 bytes into the TD report


def fake_quote(report_data: bytes) -> bytes:
    """1020 bytes shaped like a TDX v4 quote with ``report_data`` at its real offset.

    The Intel signature part is zeros: verifying it fails, as with the dstack simulator."""
    header = (4).to_bytes(2, "little") + (2).to_bytes(2, "little") + (0x81).to_bytes(4, "little")
    header += b"\x00" * (48 - len(header))
    body = bytearray(hashlib.sha384(b"privchat-fake-td").digest() * 11)[
        : QUOTE_REPORT_DATA_OFFSET - 48
    ]
    quote = header + bytes(body) + report_data
    return quote + b"\x00" * (1020 - len(quote))


def report_data(address: bytes, nonce: bytes) -> bytes:
    return address[:32].ljust(32, b"\x00") + nonce


def event_log() -> list[dict[str, Any]]:
    return [
        {
            "imr": 3,
            "event_type": 134217729,
            "digest": hashlib.sha384(b"compose-hash").hexdigest(),
            "event": "compose-hash",
            "event_payload": hashlib.sha256(b"privchat-fake-compose").hexdigest(),
        }
    ]


def info() -> dict[str, Any]:
    compose = json.dumps({"name": "privchat-fake-cloud", "runner": "docker-compose"})
    measurements = {f"rtmr{i}": hashlib.sha384(f"rtmr{i}".encode()).hexdigest() for i in range(4)}
    return {
        "app_id": "fake0000000000000000000000000000000000",
        "instance_id": "fake-instance",
        "app_cert": "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n",
        "tcb_info": {
            "mrtd": hashlib.sha384(b"mrtd").hexdigest(),
            **measurements,
            "os_image_hash": hashlib.sha256(b"os").hexdigest(),
            "compose_hash": hashlib.sha256(compose.encode()).hexdigest(),
            "device_id": hashlib.sha256(b"device").hexdigest(),
            "app_compose": compose,
            "event_log": event_log(),
        },
        "app_name": "privchat-fake-cloud",
        "device_id": hashlib.sha256(b"device").hexdigest(),
        "mr_aggregated": hashlib.sha256(b"mr").hexdigest(),
        "os_image_hash": hashlib.sha256(b"os").hexdigest(),
        "key_provider_info": "fake",
        "compose_hash": hashlib.sha256(compose.encode()).hexdigest(),
        "vm_config": "{}",
    }


def gateway_attestation(address: str, algo: str, nonce: bytes, fingerprint: str | None) -> dict:
    raw_address = bytes.fromhex(address.removeprefix("0x"))
    first = (
        hashlib.sha256(raw_address + bytes.fromhex(fingerprint)).digest()
        if fingerprint
        else raw_address
    )
    data = report_data(first, nonce)
    report: dict[str, Any] = {
        "signing_address": address,
        "signing_algo": algo,
        "intel_quote": fake_quote(data).hex(),
        "event_log": json.dumps(event_log()),
        "report_data": data.hex(),
        "request_nonce": nonce.hex(),
        "info": info(),
        "vpc": {"vpc_server_app_id": "fake-vpc", "vpc_hostname": "fake-cloud.local"},
    }
    if fingerprint:
        report["tls_cert_fingerprint"] = fingerprint
    return report


def model_attestation(model: str, address: str, algo: str, public_key: str, nonce: bytes) -> dict:
    data = report_data(bytes.fromhex(address.removeprefix("0x")), nonce)
    nvidia = {
        "nonce": nonce.hex(),
        "evidence_list": [{"certificate": "ZmFrZQ==", "evidence": "ZmFrZQ==", "arch": "HOPPER"}],
        "arch": "HOPPER",
    }
    return {
        "model": model,
        "signing_address": address,
        "signing_algo": algo,
        "signing_public_key": public_key,
        "request_nonce": nonce.hex(),
        "intel_quote": fake_quote(data).hex(),
        "nvidia_payload": json.dumps(nvidia),
        "event_log": event_log(),
        "info": info(),
    }
