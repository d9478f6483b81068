"""Pure parts of attestation: report_data construction (D14), TDX quote parsing, RTMR replay."""

from __future__ import annotations

import hashlib
import ssl
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dstack_sdk.dstack_client import replay_rtmr as sdk_replay_rtmr

from privchat.attestation.quote import QuoteError, parse_quote, parse_quote_hex
from privchat.attestation.report_data import (
    NO_BINDING,
    build_report_data,
    parse_nonce,
    spki_sha256_of_der,
    spki_sha256_of_pem,
)
from privchat.devtools.fake_cloud.attestation import fake_quote
from privchat.verify import check_report, replay_rtmr
from tests.attestation_fixtures import make_tls_files
from tests.fakes.dstack_agent import FakeDstackAgent, build_quote

NONCE = bytes(range(32))


def test_parse_nonce_accepts_exactly_64_hex_chars() -> None:
    assert parse_nonce("ab" * 32) == b"\xab" * 32
    assert parse_nonce("AB" * 32) == b"\xab" * 32


@pytest.mark.parametrize(
    "text", ["", "ab" * 31, "ab" * 33, "0x" + "ab" * 31, "zz" * 32, "ab" * 31 + "a ", "é" * 64]
)
def test_parse_nonce_rejects_everything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nonce(text)


def test_report_data_is_binding_then_nonce() -> None:
    binding = hashlib.sha256(b"spki").digest()
    assert build_report_data(binding, NONCE) == binding + NONCE
    assert build_report_data(None, NONCE) == bytes(32) + NONCE == NO_BINDING + NONCE


@pytest.mark.parametrize(
    ("binding", "nonce"), [(b"x" * 31, NONCE), (None, NONCE[:31]), (None, b"")]
)
def test_report_data_rejects_wrong_lengths(binding: bytes | None, nonce: bytes) -> None:
    with pytest.raises(ValueError):
        build_report_data(binding, nonce)


def test_spki_hash_is_sha256_of_der_subject_public_key_info(tmp_path) -> None:
    files = make_tls_files(tmp_path)
    pem = files.cert.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    expected = hashlib.sha256(spki).digest()
    assert spki_sha256_of_pem(pem) == expected
    # The same value from the DER a TLS client receives.
    assert spki_sha256_of_der(ssl.PEM_cert_to_DER_cert(pem.decode())) == expected
    # A chain file binds its first (leaf) certificate.
    other = make_tls_files(tmp_path, "other").cert.read_bytes()
    assert spki_sha256_of_pem(pem + other) == expected


def test_parse_quote_v4_from_an_independent_writer() -> None:
    agent = FakeDstackAgent()
    data = bytes(range(64))
    quote = parse_quote(agent.quote(data))
    assert quote.version == 4
    assert quote.report_data == data
    assert quote.binding == data[:32] and quote.nonce == data[32:]
    assert quote.mrtd == agent.mrtd
    assert list(quote.rtmrs) == agent.rtmrs()
    assert quote.signature_data.startswith(b"\x5a" * 64)


def test_parse_quote_of_the_fake_cloud_and_hex_forms() -> None:
    data = b"\x01" * 32 + NONCE
    assert parse_quote(fake_quote(data)).report_data == data
    raw = build_quote(data, bytes(48), [bytes(48)] * 4)
    assert parse_quote_hex(raw.hex()).report_data == data
    assert parse_quote_hex("0x" + raw.hex()).report_data == data


def test_parse_quote_v5_td15_body() -> None:
    v4 = build_quote(b"\x07" * 64, b"\x08" * 48, [b"\x09" * 48] * 4)
    header, body, rest = v4[:48], v4[48 : 48 + 584], v4[48 + 584 :]
    header = struct.pack("<H", 5) + header[2:]
    v5 = header + struct.pack("<HI", 3, 648) + body + bytes(64) + rest
    quote = parse_quote(v5)
    assert quote.version == 5 and quote.report_data == b"\x07" * 64 and quote.mrtd == b"\x08" * 48


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x04\x00", "shorter than a quote header"),
        (struct.pack("<HHI", 3, 2, 0) + bytes(1000), "not TDX"),
        (struct.pack("<HHI", 6, 2, 0x81) + bytes(1000), "unsupported quote version"),
        (struct.pack("<HHI", 4, 2, 0x81) + bytes(500), "too short"),
        (struct.pack("<HHI", 4, 2, 0x81) + bytes(624) + struct.pack("<I", 99), "past the end"),
        (struct.pack("<HHI", 5, 2, 0x81) + bytes(40) + struct.pack("<HI", 9, 584), "v5 body"),
    ],
)
def test_parse_quote_rejects_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(QuoteError, match=message):
        parse_quote(raw)


def test_parse_quote_rejects_the_dev_mock_and_non_hex() -> None:
    with pytest.raises(QuoteError):
        parse_quote_hex("0x1234567890abcdef")
    with pytest.raises(QuoteError, match="not hex"):
        parse_quote_hex("xyz")


def test_rtmr_replay_matches_the_dstack_sdk() -> None:
    digests = [e["digest"] for e in FakeDstackAgent().event_log()] + ["ab" * 20]
    assert replay_rtmr(digests).hex() == sdk_replay_rtmr(digests)
    assert replay_rtmr([]) == bytes(48)


def test_verifier_flags_a_quote_binding_a_key_the_report_does_not_claim() -> None:
    agent = FakeDstackAgent()
    quote = agent.quote(b"\x01" * 32 + NONCE).hex()
    report = {
        "chat_api_gateway_attestation": {
            "intel_quote": quote,
            "request_nonce": NONCE.hex(),
            "tls_spki_sha256": None,
        },
        "cloud_api_gateway_attestation": {"intel_quote": quote, "request_nonce": NONCE.hex()},
    }
    rows = {c.name: c for c in check_report(report, NONCE, None, None)}
    assert rows["nonce echoed"].result == "PASS"
    assert rows["quote report_data"].result == "FAIL"
    assert rows["TLS key binding"].result == "FAIL"
    assert rows["quote signature"].result == "not checked"
