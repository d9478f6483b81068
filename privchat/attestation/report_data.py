"""The 64 bytes privchat binds into its TDX quote (D14). Pure.

report_data[0:32]  = SHA-256 of the DER SubjectPublicKeyInfo of the TLS certificate privchat
                     serves itself (TLS_CERT_FILE), or 32 zero bytes when it does not
                     terminate TLS (as the reference always does);
report_data[32:64] = the 32-byte nonce, as in the reference.
"""

from __future__ import annotations

import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

NONCE_BYTES = 32
REPORT_DATA_BYTES = 64
NO_BINDING = bytes(32)
_NONCE_HEX = re.compile(r"[0-9a-fA-F]{64}")


def parse_nonce(text: str) -> bytes:
    """The 32 nonce bytes from exactly 64 hex characters (no `0x`); else `ValueError`."""
    if not _NONCE_HEX.fullmatch(text):
        raise ValueError("expected 64 hex characters")
    return bytes.fromhex(text)


def spki_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(certificate: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (what a TLS client sees)."""
    return hashlib.sha256(spki_der(certificate)).digest()


def spki_sha256_of_pem(pem: bytes) -> bytes:
    """The binding for a PEM file's first certificate (the leaf, as a TLS server sends it)."""
    return spki_sha256(x509.load_pem_x509_certificates(pem)[0])


def spki_sha256_of_der(der: bytes) -> bytes:
    return spki_sha256(x509.load_der_x509_certificate(der))


def build_report_data(binding: bytes | None, nonce: bytes) -> bytes:
    """`binding` (32 bytes, or None for zeros) followed by the 32-byte `nonce`."""
    first = NO_BINDING if binding is None else binding
    if len(first) != 32:
        raise ValueError("the TLS binding must be 32 bytes")
    if len(nonce) != NONCE_BYTES:
        raise ValueError("the nonce must be 32 bytes")
    return first + nonce
