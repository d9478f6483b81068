"""Gateway-style signatures (spec §2.7, §5.1) and the VPC login HMAC check (§1.1). Pure.

* ecdsa: EIP-191 personal-sign with secp256k1 over the text; signature ``0x`` + r‖s‖v
  (v ∈ {27, 28}); address ``0x`` + last 20 bytes of keccak256(uncompressed pubkey).
* ed25519: 64-byte signature hex; "address" is the 32-byte public key hex.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import nacl.signing
from coincurve import PrivateKey, PublicKey
from Crypto.Hash import keccak

ALGOS = ("ecdsa", "ed25519")


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def eip191_hash(text: bytes) -> bytes:
    prefix = b"\x19Ethereum Signed Message:\n" + str(len(text)).encode("ascii")
    return keccak256(prefix + text)


def eth_address(public_key: PublicKey) -> str:
    return "0x" + keccak256(public_key.format(compressed=False)[1:])[-20:].hex()


def recover_eip191_address(text: bytes, signature_hex: str) -> str:
    """Address that produced ``signature_hex`` (``0x`` + 130 hex) over ``text``."""
    raw = bytes.fromhex(signature_hex.removeprefix("0x"))
    if len(raw) != 65:
        raise ValueError("signature must be 65 bytes")
    v = raw[64] - 27 if raw[64] >= 27 else raw[64]
    public = PublicKey.from_signature_and_message(
        raw[:64] + bytes([v]), eip191_hash(text), hasher=None
    )
    return eth_address(public)


def signed_text(request_body: bytes, response_bytes: bytes) -> str:
    """``"<sha256 hex of request>:<sha256 hex of response>"``."""
    return (
        f"{hashlib.sha256(request_body).hexdigest()}:{hashlib.sha256(response_bytes).hexdigest()}"
    )


@dataclass(frozen=True)
class Signer:
    ecdsa_key: PrivateKey
    ed25519_key: nacl.signing.SigningKey

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        ecdsa = PrivateKey(hashlib.sha256(b"privchat-fake-cloud/ecdsa/" + seed).digest())
        ed = nacl.signing.SigningKey(
            hashlib.sha256(b"privchat-fake-cloud/ed25519/" + seed).digest()
        )
        return cls(ecdsa, ed)

    def address(self, algo: str) -> str:
        if algo == "ecdsa":
            return eth_address(self.ecdsa_key.public_key)
        return self.ed25519_key.verify_key.encode().hex()

    def address_bytes(self, algo: str) -> bytes:
        return bytes.fromhex(self.address(algo).removeprefix("0x"))

    def sign(self, algo: str, text: str) -> str:
        data = text.encode("utf-8")
        if algo == "ecdsa":
            raw = self.ecdsa_key.sign_recoverable(eip191_hash(data), hasher=None)
            return "0x" + (raw[:64] + bytes([raw[64] + 27])).hex()
        return self.ed25519_key.sign(data).signature.hex()

    def signature_record(self, algo: str, text: str) -> dict[str, str]:
        return {
            "text": text,
            "signature": self.sign(algo, text),
            "signing_address": self.address(algo),
            "signing_algo": algo,
            "signature_kind": "gateway",
        }


def vpc_signature(secret: bytes, timestamp: int) -> str:
    return hmac.new(secret, str(timestamp).encode("ascii"), hashlib.sha256).hexdigest()


def vpc_signature_ok(secret: bytes, timestamp: int, signature_hex: str, now: float) -> bool:
    """HMAC-SHA256(secret, decimal timestamp) in hex, constant-time, |now - ts| <= 30 s."""
    if abs(now - timestamp) > 30:
        return False
    try:
        given = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    expected = hmac.new(secret, str(timestamp).encode("ascii"), hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)
