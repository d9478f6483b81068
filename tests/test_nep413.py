"""NEP-413 sign-in, the pure part (api.md §2.2.3, scenario 51): bytes, conversions, checks."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import base58
import nacl.signing
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from privchat.auth import nep413
from privchat.auth.nep413 import (
    EXPECTED_MESSAGE,
    MAX_TIMESTAMP_MS,
    NearBadRequest,
    NearBodyError,
    NearUnauthorized,
    Nep413Payload,
)
from tests.fakes.near_rpc import FakeNearWallet, nonce_with_timestamp

RECIPIENT = "private.near.ai"
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
MINUTE = 60_000


def login_from(body: dict[str, Any]) -> nep413.SignedLogin:
    return nep413.to_signed_login(nep413.parse_body(body))


def unauthorized(login: nep413.SignedLogin, now: int = NOW) -> str:
    with pytest.raises(NearUnauthorized) as caught:
        nep413.verify_login(login, expected_recipient=RECIPIENT, now=now)
    assert caught.value.status == 401
    return caught.value.message


def bad_request(body: dict[str, Any]) -> str:
    with pytest.raises(NearBadRequest) as caught:
        login_from(body)
    assert caught.value.status == 400
    return caught.value.message


def body_error(body: object) -> NearBodyError:
    with pytest.raises(NearBodyError) as caught:
        nep413.parse_body(body)
    return caught.value


@pytest.fixture
def wallet() -> FakeNearWallet:
    return FakeNearWallet("alice.near")


# --- signed bytes: known vectors ---------------------------------------------------------------


def test_signed_bytes_match_a_hand_built_vector() -> None:
    payload = Nep413Payload(EXPECTED_MESSAGE, bytes(range(32)), RECIPIENT)
    expected = bytes.fromhex(
        "9d010080"  # 2^31 + 413 as u32 LE
        "1f000000"
        + EXPECTED_MESSAGE.encode().hex()  # 31-byte message
        + "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"  # [u8; 32]
        "0f000000"
        + b"private.near.ai".hex()  # 15-byte recipient
        + "00"  # callbackUrl: None
    )
    assert nep413.nep413_bytes(payload) == expected
    assert nep413.nep413_hash(payload) == hashlib.sha256(expected).digest()


def test_signed_bytes_with_callback_url() -> None:
    payload = Nep413Payload("hi", b"\xff" * 32, "r.near", "https://a.b/c")
    expected = (
        bytes.fromhex("9d010080")
        + b"\x02\x00\x00\x00hi"
        + b"\xff" * 32
        + b"\x06\x00\x00\x00r.near"
        + b"\x01\x0d\x00\x00\x00https://a.b/c"
    )
    assert nep413.nep413_bytes(payload) == expected


def test_signed_bytes_layout_of_a_short_message() -> None:
    out = nep413.nep413_bytes(Nep413Payload("hello", bytes(32), "intents.near"))
    assert len(out) == 62
    assert struct.unpack_from("<I", out, 0)[0] == 2147484061
    assert struct.unpack_from("<I", out, 4)[0] == 5
    assert out[8:13] == b"hello"
    assert out[13:45] == bytes(32)
    assert struct.unpack_from("<I", out, 45)[0] == 12
    assert out[49:61] == b"intents.near"
    assert out[61] == 0


def test_multibyte_strings_are_length_prefixed_in_bytes() -> None:
    assert nep413.borsh_string("é") == b"\x02\x00\x00\x00\xc3\xa9"
    assert nep413.borsh_option_string(None) == b"\x00"


def test_nonce_must_be_32_bytes_to_encode() -> None:
    with pytest.raises(ValueError):
        nep413.nep413_bytes(Nep413Payload("m", bytes(31), "r"))


def test_nonce_hex_is_64_lowercase_chars() -> None:
    assert nep413.nonce_hex(bytes(range(32))) == bytes(range(32)).hex()
    assert len(nep413.nonce_hex(b"\xab" * 32)) == 64


# --- valid logins with freshly generated keys --------------------------------------------------


def test_fresh_key_signature_verifies(wallet: FakeNearWallet) -> None:
    login = login_from(wallet.login_body(timestamp_ms=NOW - 1000))
    assert login.account_id == "alice.near"
    assert str(login.public_key) == wallet.public_key
    assert login.payload.recipient == RECIPIENT
    nep413.verify_login(login, expected_recipient=RECIPIENT, now=NOW)


def test_wallet_bytes_equal_privchat_bytes(wallet: FakeNearWallet) -> None:
    nonce = nonce_with_timestamp(NOW)
    signature = base64.b64decode(wallet.sign(EXPECTED_MESSAGE, nonce, RECIPIENT))
    digest = nep413.nep413_hash(Nep413Payload(EXPECTED_MESSAGE, nonce, RECIPIENT))
    nacl.signing.VerifyKey(bytes(wallet.signing_key.verify_key)).verify(digest, signature)


def test_callback_url_participates_in_the_signature(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW, callback_url="https://chat.near.ai/cb")
    nep413.verify_login(login_from(body), expected_recipient=RECIPIENT, now=NOW)
    body["payload"]["callbackUrl"] = "https://evil.example/cb"
    assert unauthorized(login_from(body)) == "Invalid signature"
    del body["payload"]["callbackUrl"]
    assert unauthorized(login_from(body)) == "Invalid signature"


def test_fresh_key_is_checked_now_by_default(wallet: FakeNearWallet) -> None:
    nep413.verify_login(login_from(wallet.login_body()), expected_recipient=RECIPIENT)


def test_state_is_optional_and_ignored(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["signed_message"]["state"] = "whatever"
    body["extra"] = {"ignored": True}
    assert nep413.parse_body(body).state == "whatever"
    nep413.verify_login(login_from(body), expected_recipient=RECIPIENT, now=NOW)


# --- 401: recipient, message, timestamp, signature ---------------------------------------------


def test_wrong_recipient(wallet: FakeNearWallet) -> None:
    login = login_from(wallet.login_body(recipient="chat.evil.ai", timestamp_ms=NOW))
    assert unauthorized(login) == "Invalid recipient: expected private.near.ai, got chat.evil.ai"


def test_wrong_message(wallet: FakeNearWallet) -> None:
    login = login_from(wallet.login_body(message="Sign in please", timestamp_ms=NOW))
    assert unauthorized(login) == (
        "Invalid message: expected 'Sign in to NEAR AI Private Chat', got 'Sign in please'"
    )


def test_recipient_is_checked_before_message_before_timestamp(wallet: FakeNearWallet) -> None:
    login = login_from(wallet.login_body(recipient="x", message="y", timestamp_ms=0))
    assert unauthorized(login).startswith("Invalid recipient")
    login = login_from(wallet.login_body(message="y", timestamp_ms=0))
    assert unauthorized(login).startswith("Invalid message")


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        (0, "Invalid signature timestamp: timestamp is zero"),
        (2**64 - 1, "Invalid signature timestamp: timestamp out of range"),
        (MAX_TIMESTAMP_MS + 1, "Invalid signature timestamp: timestamp out of range"),
        (MAX_TIMESTAMP_MS, "Invalid signature timestamp: timestamp is in the future"),
        (NOW + 60 * MINUTE, "Invalid signature timestamp: timestamp is in the future"),
        (NOW + 1, "Invalid signature timestamp: timestamp is in the future"),
        (NOW - 5 * MINUTE - 1000, "Signature expired"),
        (NOW - 5 * MINUTE - 1, "Signature expired"),
    ],
)
def test_timestamp_rejections(timestamp: int, message: str) -> None:
    nonce = struct.pack(">Q", timestamp) + bytes(24)
    with pytest.raises(NearUnauthorized) as caught:
        nep413.check_timestamp(nonce, NOW)
    assert caught.value.message == message


@pytest.mark.parametrize("age", [0, 60_000, 5 * MINUTE])
def test_timestamp_window_accepts(age: int) -> None:
    nonce = struct.pack(">Q", NOW - age) + bytes(24)
    assert nep413.check_timestamp(nonce, NOW) == NOW - age


def test_timestamp_is_big_endian_milliseconds() -> None:
    nonce = bytes.fromhex("0000019b77f0c800") + b"\xff" * 24
    assert nep413.nonce_timestamp_ms(nonce) == 0x19B77F0C800


def test_expired_signed_login(wallet: FakeNearWallet) -> None:
    login = login_from(wallet.login_body(timestamp_ms=NOW - 5 * MINUTE - 1000))
    assert unauthorized(login) == "Signature expired"


def test_future_signed_login(wallet: FakeNearWallet) -> None:
    login = login_from(wallet.login_body(timestamp_ms=NOW + 60 * MINUTE))
    assert unauthorized(login) == "Invalid signature timestamp: timestamp is in the future"


def test_signature_from_another_key(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["signed_message"]["publicKey"] = FakeNearWallet("alice.near").public_key
    assert unauthorized(login_from(body)) == "Invalid signature"


def test_tampered_signature(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    raw = bytearray(base64.b64decode(body["signed_message"]["signature"]))
    raw[10] ^= 0x01
    body["signed_message"]["signature"] = base64.b64encode(bytes(raw)).decode()
    assert unauthorized(login_from(body)) == "Invalid signature"


def test_tampered_nonce(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["payload"]["nonce"][31] ^= 0x01
    assert unauthorized(login_from(body)) == "Invalid signature"


def test_signature_over_unhashed_bytes_is_rejected(wallet: FakeNearWallet) -> None:
    nonce = nonce_with_timestamp(NOW)
    payload = Nep413Payload(EXPECTED_MESSAGE, nonce, RECIPIENT)
    raw = wallet.signing_key.sign(nep413.nep413_bytes(payload)).signature
    body = wallet.login_body(nonce=nonce)
    body["signed_message"]["signature"] = base64.b64encode(raw).decode()
    assert unauthorized(login_from(body)) == "Invalid signature"


# --- secp256k1 keys also parse and verify ------------------------------------------------------


def _secp_login(high_s: bool = False) -> nep413.SignedLogin:
    private = ec.generate_private_key(ec.SECP256K1())
    point = private.public_key().public_numbers()
    key = point.x.to_bytes(32, "big") + point.y.to_bytes(32, "big")
    nonce = nonce_with_timestamp(NOW)
    digest = nep413.nep413_hash(Nep413Payload(EXPECTED_MESSAGE, nonce, RECIPIENT))
    r, s = decode_dss_signature(private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = min(s, order - s)
    if high_s:
        s = order - s
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x00"
    body = {
        "signed_message": {
            "accountId": "bob.near",
            "publicKey": "secp256k1:" + base58.b58encode(key).decode(),
            "signature": base64.b64encode(signature).decode(),
        },
        "payload": {"message": EXPECTED_MESSAGE, "nonce": list(nonce), "recipient": RECIPIENT},
    }
    return login_from(body)


def test_secp256k1_signature_verifies() -> None:
    login = _secp_login()
    assert login.public_key.key_type == "secp256k1"
    nep413.verify_login(login, expected_recipient=RECIPIENT, now=NOW)


def test_secp256k1_high_s_is_rejected() -> None:
    assert unauthorized(_secp_login(high_s=True)) == "Invalid signature"


# --- 400: conversions, in order ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("rsa:abc", "unknown key type 'rsa'"),
        ("ed25519:0OIl", "invalid key data: provided string contained invalid character '0' at byte 0"),
        ("ed25519:" + base58.b58encode(bytes(31)).decode(), "invalid key length: expected the input of 32 bytes, but 31 was given"),
        ("ed25519:", "invalid key length: expected the input of 32 bytes, but 0 was given"),
        ("secp256k1:" + base58.b58encode(bytes(32)).decode(), "invalid key length: expected the input of 64 bytes, but 32 was given"),
    ],
)  # fmt: skip
def test_public_key_rejections(wallet: FakeNearWallet, key: str, message: str) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["signed_message"]["publicKey"] = key
    assert bad_request(body) == message


def test_public_key_without_prefix_is_ed25519(wallet: FakeNearWallet) -> None:
    key = nep413.parse_public_key(wallet.public_key.removeprefix("ed25519:"))
    assert str(key) == wallet.public_key
    assert nep413.parse_public_key("ED25519:" + wallet.public_key[8:]).key_type == "ed25519"


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("!!!!", "Invalid symbol 33, offset 0."),
        ("QUJD", None),  # valid base64 of 3 bytes: wrong length below
        ("QUI", "Invalid padding"),
        ("QUI==", "Invalid padding"),
        ("QUJ=", "Invalid last symbol 74, offset 2."),
        ("Q===", "Invalid input length: 4"),
        ("QU=I", "Invalid symbol 73, offset 3."),
        ("QUJD-_==", "Invalid symbol 45, offset 4."),
    ],
)
def test_signature_base64_rejections(
    wallet: FakeNearWallet, signature: str, message: str | None
) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["signed_message"]["signature"] = signature
    got = bad_request(body)
    if message is None:
        assert got.startswith("Invalid signature: ")
    else:
        assert got == message


def test_signature_length_must_match_key_type(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["signed_message"]["signature"] = base64.b64encode(bytes(65)).decode()
    assert bad_request(body) == (
        "Invalid signature: invalid signature length: expected the input of 64 bytes, "
        "but 65 was given"
    )


@pytest.mark.parametrize(
    ("account", "message"),
    [
        ("a", "the Account ID is too short"),
        ("a" * 65, "the Account ID is too long"),
        ("Alice.near", "the Account ID contains an invalid character 'A' at 0"),
        ("alice..near", "the Account ID has a redundant separator '.' at 6"),
        (".alice", "the Account ID has a redundant separator '.' at 0"),
        ("alice.", "the Account ID has a redundant separator '.' at 5"),
        ("al ice", "the Account ID contains an invalid character ' ' at 2"),
        ("éa.near", "the Account ID contains an invalid character 'é' at 0"),
        ("aé", "the Account ID contains an invalid character 'é' at 1"),
        ("a.é", "the Account ID contains an invalid character 'é' at 2"),
        ("ab_.é", "the Account ID has a redundant separator '.' at 3"),
    ],
)
def test_account_id_rejections(wallet: FakeNearWallet, account: str, message: str) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["signed_message"]["accountId"] = account
    assert bad_request(body) == message


@pytest.mark.parametrize(
    "account", ["ab", "alice.near", "app_1-x.near", "a" * 64, "0x" + "ab" * 20, "f" * 64]
)
def test_account_id_accepts(account: str) -> None:
    assert nep413.validate_account_id(account) == account


@pytest.mark.parametrize("length", [0, 31, 33])
def test_nonce_length(wallet: FakeNearWallet, length: int) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["payload"]["nonce"] = [1] * length
    assert bad_request(body) == f"Invalid nonce length: expected 32, got {length}"


def test_conversion_order(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["signed_message"].update(publicKey="rsa:x", signature="!", accountId="Alice")
    body["payload"]["nonce"] = [1]
    assert bad_request(body) == "unknown key type 'rsa'"
    body["signed_message"]["publicKey"] = wallet.public_key
    assert bad_request(body).startswith("Invalid symbol")
    body["signed_message"]["signature"] = "AAAA"
    assert bad_request(body).startswith("Invalid signature: ")
    body["signed_message"]["signature"] = base64.b64encode(bytes(64)).decode()
    assert bad_request(body).startswith("the Account ID contains")
    body["signed_message"]["accountId"] = "alice.near"
    assert bad_request(body) == "Invalid nonce length: expected 32, got 1"


# --- 422: body shape ---------------------------------------------------------------------------


def test_body_shape_errors(wallet: FakeNearWallet) -> None:
    prefix = "Failed to deserialize the JSON body into the target type"
    good = wallet.login_body(timestamp_ms=NOW)
    assert body_error([]).message.startswith(prefix)
    assert body_error({"payload": good["payload"]}).message == (
        f"{prefix}: missing field `signed_message`"
    )
    cases: list[tuple[str, str, Any, str]] = [
        ("signed_message", "accountId", None, "missing field `accountId`"),
        ("signed_message", "publicKey", 5, "invalid type: integer `5`, expected a string"),
        ("payload", "nonce", "abc", "invalid type: string, expected a sequence"),
        ("payload", "nonce", [1] * 31 + [256], "invalid value: integer `256`, expected u8"),
        ("payload", "nonce", [True] * 32, "invalid type: boolean `true`, expected u8"),
        ("payload", "nonce", [1.5] * 32, "invalid type: floating point `1.5`, expected u8"),
        ("payload", "nonce", [-1] * 32, "invalid value: integer `-1`, expected u8"),
        ("payload", "recipient", ["x"], "invalid type: sequence, expected a string"),
        ("payload", "callbackUrl", 1, "invalid type: integer `1`, expected a string"),
    ]
    for part, key, value, problem in cases:
        body = wallet.login_body(timestamp_ms=NOW)
        if value is None:
            del body[part][key]
        else:
            body[part][key] = value
        error = body_error(body)
        assert error.status == 422
        assert error.message.startswith(prefix)
        assert error.message.endswith(problem), error.message


def test_null_optionals_are_absent(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["signed_message"]["state"] = None
    body["payload"]["callbackUrl"] = None
    request = nep413.parse_body(body)
    assert request.state is None and request.callback_url is None
    assert "signature" not in repr(request)


def test_lone_surrogate_is_a_json_error(wallet: FakeNearWallet) -> None:
    body = wallet.login_body(timestamp_ms=NOW)
    body["payload"]["message"] = "\ud800"
    error = body_error(body)
    assert error.status == 400
    assert error.message.startswith("Failed to parse the request body as JSON")


def test_error_statuses() -> None:
    assert NearBadRequest("x").status == 400
    assert NearUnauthorized("x").status == 401
    assert NearBodyError("x").status == 422
    assert isinstance(NearUnauthorized("x"), nep413.NearAuthError)


def test_the_first_error_is_the_one_the_reference_reports(wallet: FakeNearWallet) -> None:
    prefix = "Failed to deserialize the JSON body into the target type"
    good = wallet.login_body(timestamp_ms=NOW)
    # A missing part before a mistyped one, whatever their order in the body.
    assert body_error({"signed_message": 5}).message == f"{prefix}: missing field `payload`"
    assert body_error({"signed_message": 5, "payload": good["payload"]}).message == (
        f"{prefix}: signed_message: invalid type: integer `5`, expected struct NearSignedMessage"
    )
    # Inside a part, fields in their order: a mistyped accountId before a missing signature.
    signed = {k: v for k, v in good["signed_message"].items() if k != "signature"}
    signed["accountId"] = 7
    assert body_error({**good, "signed_message": signed}).message == (
        f"{prefix}: signed_message.accountId: invalid type: integer `7`, expected a string"
    )
    nonce = [1] * 5 + [300] + [True] * 26
    assert body_error({**good, "payload": {**good["payload"], "nonce": nonce}}).message == (
        f"{prefix}: payload.nonce[5]: invalid value: integer `300`, expected u8"
    )
