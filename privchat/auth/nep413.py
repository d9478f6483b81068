"""Sign in with NEAR (NEP-413), the pure part: body shape, conversions, signed bytes, checks.

No I/O here. The key-ownership lookup is `privchat.auth.near_rpc`; the used-nonce store, users
and sessions belong to the route. Every failure is a `NearAuthError` carrying the HTTP status and
the exact text of api.md §2.2.3; the route turns it into a response:

- `NearBodyError` (422, or 400 for a string JSON cannot carry): E-TEXT, `message` is the body.
- `NearBadRequest` (400): E-API `bad_request` with `message`.
- `NearUnauthorized` (401): E-API `unauthorized` with `message`, no details.

Route order::

    request = parse_body(json_value)                       # 422
    login = to_signed_login(request)                       # 400, in the spec's order
    check_payload(login.payload, expected_recipient)       # 401 recipient, then message
    ...delete used nonces older than 10 minutes...
    check_timestamp(login.payload.nonce)                   # 401
    verify_signature(login)                                # 401 "Invalid signature"
    ...full-access key over RPC, else INVALID_SIGNATURE...
    ...insert nonce_hex(nonce), already there -> NONCE_REUSED...

`verify_login` runs the four pure 401 checks in that order for callers that need no
housekeeping in between.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from dataclasses import dataclass, field
from typing import Annotated, Literal

import base58
import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pydantic import AfterValidator, BaseModel, Field, StrictInt, StrictStr, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

EXPECTED_MESSAGE = "Sign in to NEAR AI Private Chat"
NEP413_TAG = 2**31 + 413
NONCE_LENGTH = 32
MAX_AGE_MS = 5 * 60 * 1000
# Last millisecond a chrono DateTime<Utc> can hold (+262142-12-31T23:59:59.999Z); beyond it the
# reference cannot build a date and says "timestamp out of range".
MAX_TIMESTAMP_MS = 8_210_266_876_799_999

INVALID_SIGNATURE = "Invalid signature"
SIGNATURE_EXPIRED = "Signature expired"
TIMESTAMP_ZERO = "Invalid signature timestamp: timestamp is zero"
TIMESTAMP_OUT_OF_RANGE = "Invalid signature timestamp: timestamp out of range"
TIMESTAMP_IN_FUTURE = "Invalid signature timestamp: timestamp is in the future"
NONCE_REUSED = "Nonce already used (replay attack detected)"
BODY_ERROR = "Failed to deserialize the JSON body into the target type"
JSON_ERROR = "Failed to parse the request body as JSON"

KeyType = Literal["ed25519", "secp256k1"]
_KEY_LENGTHS: dict[str, int] = {"ed25519": 32, "secp256k1": 64}
_SIGNATURE_LENGTHS: dict[str, int] = {"ed25519": 64, "secp256k1": 65}
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_B58_ALPHABET = frozenset(base58.BITCOIN_ALPHABET)
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class NearAuthError(Exception):
    """A rejected NEAR sign-in; `status` and `message` are what the client sees."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NearBodyError(NearAuthError):
    """The JSON body has the wrong shape (422 E-TEXT) or a string JSON cannot carry (400 E-TEXT)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class NearBadRequest(NearAuthError):
    """A field does not convert (key, signature encoding or length, account id, nonce length)."""

    status = 400


class NearUnauthorized(NearAuthError):
    """Verification failed (recipient, message, timestamp, signature, key, replay)."""

    status = 401


@dataclass(frozen=True)
class NearAuthRequest:
    """The body of `POST /v1/auth/near`, shape-checked but not yet converted."""

    account_id: str
    public_key: str
    signature: str = field(repr=False)
    state: str | None
    message: str
    nonce: tuple[int, ...]
    recipient: str
    callback_url: str | None


@dataclass(frozen=True)
class NearPublicKey:
    key_type: KeyType
    data: bytes

    def __str__(self) -> str:
        return f"{self.key_type}:{base58.b58encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class Nep413Payload:
    message: str
    nonce: bytes
    recipient: str
    callback_url: str | None = None


@dataclass(frozen=True)
class SignedLogin:
    """A converted request: everything the checks need."""

    account_id: str
    public_key: NearPublicKey
    signature: bytes = field(repr=False)
    payload: Nep413Payload


# --- body shape (422) --------------------------------------------------------------------------


def _no_lone_surrogate(value: str | None) -> str | None:
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError("lone_surrogate", "lone surrogate in string") from None
    return value


Text = Annotated[StrictStr, AfterValidator(_no_lone_surrogate)]
U8 = Annotated[StrictInt, Field(ge=0, le=255)]


class NearSignedMessage(BaseModel):
    """What the wallet signed with, and the signature (base64)."""

    accountId: Text = Field(examples=["alice.near"])  # noqa: N815 - the wire's names
    publicKey: Text = Field(examples=["ed25519:..."])  # noqa: N815
    signature: Text
    state: Text | None = None


class NearPayload(BaseModel):
    """The NEP-413 payload: message, 32-byte nonce (8 bytes of big-endian ms first), recipient."""

    message: Text = Field(examples=[EXPECTED_MESSAGE])
    nonce: list[U8]
    recipient: Text = Field(examples=["private.near.ai"])
    callbackUrl: Text | None = None  # noqa: N815


class NearAuthBody(BaseModel):
    """The body of `POST /v1/auth/near` (unknown keys are ignored)."""

    signed_message: NearSignedMessage
    payload: NearPayload


_STRUCTS = {
    (): "NearAuthRequest",
    ("signed_message",): "NearSignedMessage",
    ("payload",): "NearPayload",
}


def _json_type(value: object) -> str:
    """How serde names a JSON value in its error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return "string"
    return "sequence" if isinstance(value, list) else "map"


def _where(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _body_error(error: ErrorDetails) -> NearBodyError:
    """One pydantic error as the reference's serde text."""
    loc, kind, value = tuple(error["loc"]), error["type"], error["input"]
    if kind == "lone_surrogate":
        return NearBodyError(f"{JSON_ERROR}: lone surrogate in string", status=400)
    if kind == "missing":
        loc, problem = loc[:-1], f"missing field `{loc[-1]}`"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        problem = f"invalid type: {_json_type(value)}, expected struct {_STRUCTS[loc]}"
    elif kind == "list_type":
        problem = f"invalid type: {_json_type(value)}, expected a sequence"
    elif kind in ("greater_than_equal", "less_than_equal"):
        problem = f"invalid value: {_json_type(value)}, expected u8"
    elif isinstance(loc[-1], int):
        problem = f"invalid type: {_json_type(value)}, expected u8"
    else:
        problem = f"invalid type: {_json_type(value)}, expected a string"
    where = _where(loc)
    return NearBodyError(
        f"{BODY_ERROR}: {where}: {problem}" if where else f"{BODY_ERROR}: {problem}"
    )


def _first(errors: list[ErrorDetails]) -> ErrorDetails:
    """The error the reference reports: a missing top-level part before a mistyped one, then
    fields in their order (pydantic lists them in that order)."""
    return min(
        enumerate(errors),
        key=lambda pair: (
            len(pair[1]["loc"]) > 1,
            len(pair[1]["loc"]) <= 1 and pair[1]["type"] != "missing",
            pair[0],
        ),
    )[1]


def parse_body(body: object) -> NearAuthRequest:
    """Check the JSON shape of the request body (unknown keys are ignored)."""
    try:
        parsed = NearAuthBody.model_validate(body)
    except ValidationError as exc:
        raise _body_error(_first(exc.errors())) from None
    signed, payload = parsed.signed_message, parsed.payload
    return NearAuthRequest(
        account_id=signed.accountId,
        public_key=signed.publicKey,
        signature=signed.signature,
        state=signed.state,
        message=payload.message,
        nonce=tuple(payload.nonce),
        recipient=payload.recipient,
        callback_url=payload.callbackUrl,
    )


# --- conversions (400) ------------------------------------------------------------------------


def parse_public_key(text: str) -> NearPublicKey:
    """`ed25519:<base58>` (or `secp256k1:<base58>`; no prefix means ed25519)."""
    prefix, colon, encoded = text.partition(":")
    if colon:
        key_type = prefix.lower()
        if key_type not in _KEY_LENGTHS:
            raise NearBadRequest(f"unknown key type '{prefix}'")
    else:
        key_type, encoded = "ed25519", text
    for index, char in enumerate(encoded.encode("utf-8")):
        if char not in _B58_ALPHABET:
            shown = encoded.encode("utf-8")[index : index + 1].decode("utf-8", "replace")
            raise NearBadRequest(
                f"invalid key data: provided string contained invalid character {shown!r} "
                f"at byte {index}"
            )
    data = base58.b58decode(encoded) if encoded else b""
    expected = _KEY_LENGTHS[key_type]
    if len(data) != expected:
        raise NearBadRequest(
            f"invalid key length: expected the input of {expected} bytes, but {len(data)} was given"
        )
    return NearPublicKey(key_type, data)  # type: ignore[arg-type]


def decode_signature(text: str) -> bytes:
    """Standard base64 with canonical padding and zero trailing bits, as the reference decodes."""
    raw = text.encode("utf-8")
    pad_at = raw.find(b"=")
    body, padding = (raw, b"") if pad_at < 0 else (raw[:pad_at], raw[pad_at:])
    for index, byte in enumerate(body):
        if byte not in _B64_ALPHABET:
            raise NearBadRequest(f"Invalid symbol {byte}, offset {index}.")
    for index, byte in enumerate(padding, start=len(body)):
        if byte != ord("="):
            raise NearBadRequest(f"Invalid symbol {byte}, offset {index}.")
    remainder = len(body) % 4
    if remainder == 1:
        raise NearBadRequest(f"Invalid input length: {len(raw)}")
    if len(padding) != (4 - remainder) % 4:
        raise NearBadRequest("Invalid padding")
    if remainder:
        last = body[-1]
        unused_bits = 0x0F if remainder == 2 else 0x03
        if _b64_value(last) & unused_bits:
            raise NearBadRequest(f"Invalid last symbol {last}, offset {len(body) - 1}.")
    return base64.b64decode(raw, validate=True)


def _b64_value(byte: int) -> int:
    char = chr(byte)
    if "A" <= char <= "Z":
        return byte - ord("A")
    if "a" <= char <= "z":
        return byte - ord("a") + 26
    if "0" <= char <= "9":
        return byte - ord("0") + 52
    return 62 if char == "+" else 63


def check_signature_length(key_type: KeyType, signature: bytes) -> None:
    expected = _SIGNATURE_LENGTHS[key_type]
    if len(signature) != expected:
        raise NearBadRequest(
            f"Invalid signature: invalid signature length: expected the input of {expected} "
            f"bytes, but {len(signature)} was given"
        )


def validate_account_id(account_id: str) -> str:
    """NEAR account id rules: 2..64 bytes of `a-z 0-9` joined by single `-`, `_` or `.`."""
    if len(account_id.encode("utf-8")) < 2:
        raise NearBadRequest("the Account ID is too short")
    if len(account_id.encode("utf-8")) > 64:
        raise NearBadRequest("the Account ID is too long")
    previous_is_separator = True
    index, offset, char = 0, 0, ""
    for char in account_id:  # `index` is a byte offset, as in the reference's messages
        index, offset = offset, offset + len(char.encode("utf-8"))
        if "a" <= char <= "z" or "0" <= char <= "9":
            is_separator = False
        elif char in "-_.":
            is_separator = True
        else:
            raise NearBadRequest(
                f"the Account ID contains an invalid character {char!r} at {index}"
            )
        if is_separator and previous_is_separator:
            raise NearBadRequest(f"the Account ID has a redundant separator {char!r} at {index}")
        previous_is_separator = is_separator
    if previous_is_separator:
        raise NearBadRequest(f"the Account ID has a redundant separator {char!r} at {index}")
    return account_id


def to_nonce(values: tuple[int, ...] | list[int]) -> bytes:
    if len(values) != NONCE_LENGTH:
        raise NearBadRequest(f"Invalid nonce length: expected {NONCE_LENGTH}, got {len(values)}")
    return bytes(values)


def to_signed_login(request: NearAuthRequest) -> SignedLogin:
    """Convert in the reference's order: key, base64, signature length, account id, nonce."""
    public_key = parse_public_key(request.public_key)
    signature = decode_signature(request.signature)
    check_signature_length(public_key.key_type, signature)
    account_id = validate_account_id(request.account_id)
    nonce = to_nonce(request.nonce)
    payload = Nep413Payload(request.message, nonce, request.recipient, request.callback_url)
    return SignedLogin(account_id, public_key, signature, payload)


# --- signed bytes ------------------------------------------------------------------------------


def borsh_u32(value: int) -> bytes:
    return struct.pack("<I", value)


def borsh_string(value: str) -> bytes:
    encoded = value.encode("utf-8")
    return borsh_u32(len(encoded)) + encoded


def borsh_option_string(value: str | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + borsh_string(value)


def nep413_bytes(payload: Nep413Payload) -> bytes:
    """u32 LE tag 2^31+413, then Borsh {message, nonce: [u8; 32], recipient, callbackUrl?}."""
    if len(payload.nonce) != NONCE_LENGTH:
        raise ValueError("NEP-413 nonce must be 32 bytes")
    return (
        borsh_u32(NEP413_TAG)
        + borsh_string(payload.message)
        + payload.nonce
        + borsh_string(payload.recipient)
        + borsh_option_string(payload.callback_url)
    )


def nep413_hash(payload: Nep413Payload) -> bytes:
    return hashlib.sha256(nep413_bytes(payload)).digest()


def nonce_hex(nonce: bytes) -> str:
    """The replay-protection key stored in `near_used_nonces` (64 lowercase hex chars)."""
    return nonce.hex()


# --- verification (401) ------------------------------------------------------------------------


def check_payload(payload: Nep413Payload, expected_recipient: str) -> None:
    if payload.recipient != expected_recipient:
        raise NearUnauthorized(
            f"Invalid recipient: expected {expected_recipient}, got {payload.recipient}"
        )
    if payload.message != EXPECTED_MESSAGE:
        raise NearUnauthorized(
            f"Invalid message: expected '{EXPECTED_MESSAGE}', got '{payload.message}'"
        )


def nonce_timestamp_ms(nonce: bytes) -> int:
    """Bytes 0..7 of the nonce: big-endian milliseconds since the Unix epoch."""
    return int.from_bytes(nonce[:8], "big")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def check_timestamp(nonce: bytes, now: int | None = None) -> int:
    """The nonce's timestamp must lie in [now - 5 min, now]; returns it (ms)."""
    timestamp = nonce_timestamp_ms(nonce)
    if timestamp == 0:
        raise NearUnauthorized(TIMESTAMP_ZERO)
    if timestamp > MAX_TIMESTAMP_MS:
        raise NearUnauthorized(TIMESTAMP_OUT_OF_RANGE)
    current = now_ms() if now is None else now
    if current - timestamp > MAX_AGE_MS:
        raise NearUnauthorized(SIGNATURE_EXPIRED)
    if timestamp > current:
        raise NearUnauthorized(TIMESTAMP_IN_FUTURE)
    return timestamp


def signature_valid(public_key: NearPublicKey, signature: bytes, digest: bytes) -> bool:
    if public_key.key_type == "ed25519":
        return _ed25519_valid(public_key.data, signature, digest)
    return _secp256k1_valid(public_key.data, signature, digest)


def _ed25519_valid(key: bytes, signature: bytes, digest: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(key).verify(digest, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


def _secp256k1_valid(key: bytes, signature: bytes, digest: bytes) -> bool:
    """NEAR's secp256k1 signature is r || s || v over the 32-byte digest; low-s only."""
    if len(signature) != 65 or len(key) != 64:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if signature[64] > 3 or not 0 < r < _SECP256K1_ORDER or not 0 < s <= _SECP256K1_ORDER // 2:
        return False
    try:
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), b"\x04" + key)
        point.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_signature(login: SignedLogin) -> None:
    if not signature_valid(login.public_key, login.signature, nep413_hash(login.payload)):
        raise NearUnauthorized(INVALID_SIGNATURE)


def verify_login(login: SignedLogin, *, expected_recipient: str, now: int | None = None) -> None:
    """Recipient, message, timestamp, signature: the pure 401 checks in the reference's order."""
    check_payload(login.payload, expected_recipient)
    check_timestamp(login.payload.nonce, now)
    verify_signature(login)
