"""Sign in with NEAR (NEP-413, §2.2.3) with fresh ed25519 keys against the fake NEAR RPC."""

from __future__ import annotations

import base64
import secrets
import struct
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2
import pytest
import trio

from privchat.config import Config
from privchat.runtime import Running

from .conftest import auth, login, start_server
from .fakes.near_rpc import (
    FakeNearRpc,
    FakeNearWallet,
    function_call_permission,
    nonce_with_timestamp,
    serve_fake_near_rpc,
)

RECIPIENT = "private.near.ai"


@dataclass
class NearEnv:
    rpc: FakeNearRpc
    server: Running
    client: httpx2.AsyncClient

    def wallet(self, *, full_access: bool = True) -> FakeNearWallet:
        wallet = FakeNearWallet(f"acct{uuid.uuid4().hex[:12]}.near")
        permission = "FullAccess" if full_access else function_call_permission()
        self.rpc.add_key(wallet.account_id, wallet.public_key, permission)
        return wallet

    async def post(self, body: object) -> httpx2.Response:
        return await self.client.post("/v1/auth/near", json=body)


@pytest.fixture
async def near(nursery: trio.Nursery, config: Config) -> AsyncIterator[NearEnv]:
    rpc = FakeNearRpc()
    rpc_url = await nursery.start(serve_fake_near_rpc, rpc)
    server = await start_server(nursery, config, near_rpc_url=rpc_url)
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
        yield NearEnv(rpc, server, client)


def unauthorized(response: httpx2.Response, message: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"code": "unauthorized", "message": message}


def bad_request(response: httpx2.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"code": "bad_request", "message": message}


async def test_valid_login_creates_then_finds_user(near: NearEnv) -> None:
    wallet = near.wallet()
    first = await near.post(wallet.login_body(recipient=RECIPIENT))
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"token", "session_id", "expires_at", "is_new_user"}
    assert body["is_new_user"] is True and body["token"].startswith("sess_")
    assert body["expires_at"].endswith("+00:00")
    me = (await near.client.get("/v1/users/me", headers=auth(body["token"]))).json()
    assert me["user"]["email"] == f"{wallet.account_id}@near"
    assert me["user"]["name"] == wallet.account_id and me["user"]["avatar_url"] is None
    assert [a["provider"] for a in me["linked_accounts"]] == ["near"]
    query = near.rpc.queries("view_access_key")[-1]
    assert query == {
        "request_type": "view_access_key",
        "finality": "optimistic",
        "account_id": wallet.account_id,
        "public_key": wallet.public_key,
    }
    second = await near.post(wallet.login_body(recipient=RECIPIENT))
    assert second.status_code == 200 and second.json()["is_new_user"] is False
    assert second.json()["session_id"] != body["session_id"]
    await near.server.services.activity.flush()
    rows = await near.server.services.db.fetch(
        "SELECT activity_type, auth_method FROM user_activity_log WHERE user_id = $1"
        " ORDER BY created_at",
        uuid.UUID(me["user"]["id"]),
    )
    assert [(r["activity_type"], r["auth_method"]) for r in rows] == [
        ("signup", "near"),
        ("login", "near"),
    ]


async def test_callback_url_is_part_of_the_signed_bytes(near: NearEnv) -> None:
    wallet = near.wallet()
    body = wallet.login_body(callback_url="https://app.near.ai/cb")
    assert (await near.post(body)).status_code == 200
    tampered = wallet.login_body(callback_url="https://app.near.ai/cb")
    tampered["payload"]["callbackUrl"] = "https://evil.com/cb"
    unauthorized(await near.post(tampered), "Invalid signature")


async def test_wrong_recipient(near: NearEnv) -> None:
    wallet = near.wallet()
    response = await near.post(wallet.login_body(recipient="evil.near.ai"))
    unauthorized(response, "Invalid recipient: expected private.near.ai, got evil.near.ai")


async def test_recipient_is_configurable(nursery: trio.Nursery, config: Config) -> None:
    rpc = FakeNearRpc()
    rpc_url = await nursery.start(serve_fake_near_rpc, rpc)
    server = await start_server(
        nursery, config, near_rpc_url=rpc_url, near_expected_recipient="127.0.0.1:3000"
    )
    wallet = FakeNearWallet(f"cfg{uuid.uuid4().hex[:10]}.near")
    rpc.add_key(wallet.account_id, wallet.public_key)
    async with httpx2.AsyncClient(base_url=server.url) as client:
        ok = await client.post("/v1/auth/near", json=wallet.login_body(recipient="127.0.0.1:3000"))
        assert ok.status_code == 200
        wrong = await client.post("/v1/auth/near", json=wallet.login_body(recipient=RECIPIENT))
        unauthorized(wrong, "Invalid recipient: expected 127.0.0.1:3000, got private.near.ai")


async def test_wrong_message(near: NearEnv) -> None:
    wallet = near.wallet()
    response = await near.post(wallet.login_body(message="Sign in to something else"))
    unauthorized(
        response,
        "Invalid message: expected 'Sign in to NEAR AI Private Chat', got 'Sign in to something else'",
    )


async def test_expired_signature(near: NearEnv) -> None:
    wallet = near.wallet()
    old = time.time_ns() // 1_000_000 - (5 * 60 + 1) * 1000
    unauthorized(await near.post(wallet.login_body(timestamp_ms=old)), "Signature expired")


async def test_future_timestamp(near: NearEnv) -> None:
    wallet = near.wallet()
    future = time.time_ns() // 1_000_000 + 60_000
    response = await near.post(wallet.login_body(timestamp_ms=future))
    unauthorized(response, "Invalid signature timestamp: timestamp is in the future")


async def test_scenario_51_timestamp_rules(near: NearEnv) -> None:
    """Scenario 51: 0 → zero; u64::MAX → out of range; now+1h → future; now-(5min+1s) →
    expired; now-60s → ok."""
    wallet = near.wallet()
    now = time.time_ns() // 1_000_000
    cases = [
        (struct.pack(">Q", 0) + secrets.token_bytes(24), "Invalid signature timestamp: timestamp is zero"),
        (b"\xff" * 8 + secrets.token_bytes(24), "Invalid signature timestamp: timestamp out of range"),
        (nonce_with_timestamp(now + 3_600_000), "Invalid signature timestamp: timestamp is in the future"),
        (nonce_with_timestamp(now - 301_000), "Signature expired"),
    ]  # fmt: skip
    for nonce, message in cases:
        unauthorized(await near.post(wallet.login_body(nonce=nonce)), message)
    ok = await near.post(wallet.login_body(nonce=nonce_with_timestamp(now - 60_000)))
    assert ok.status_code == 200


async def test_replayed_nonce(near: NearEnv) -> None:
    wallet = near.wallet()
    body = wallet.login_body()
    assert (await near.post(body)).status_code == 200
    unauthorized(await near.post(body), "Nonce already used (replay attack detected)")
    nonce_hex = bytes(body["payload"]["nonce"]).hex()
    stored = await near.server.services.db.fetchval(
        "SELECT COUNT(*) FROM near_used_nonces WHERE nonce_hex = $1", nonce_hex
    )
    assert stored == 1


async def test_function_call_key_is_refused(near: NearEnv) -> None:
    """A function-call key is not enough; the nonce is consumed only after a valid signature
    and key, so the same signed body works once the key has full access."""
    wallet = near.wallet(full_access=False)
    body = wallet.login_body()
    unauthorized(await near.post(body), "Invalid signature")
    near.rpc.add_key(wallet.account_id, wallet.public_key, "FullAccess")
    assert (await near.post(body)).status_code == 200


async def test_unknown_key_and_broken_rpc(near: NearEnv) -> None:
    stranger = FakeNearWallet(f"nokey{uuid.uuid4().hex[:8]}.near")
    unauthorized(await near.post(stranger.login_body()), "Invalid signature")
    wallet = near.wallet()
    near.rpc.fail_status = 503
    body = wallet.login_body()
    unauthorized(await near.post(body), "Invalid signature")
    near.rpc.fail_status = None
    assert (await near.post(body)).status_code == 200  # the nonce was not burnt


async def test_bad_signature(near: NearEnv) -> None:
    wallet = near.wallet()
    forger = FakeNearWallet(wallet.account_id)  # another key signs for the same account
    body = forger.login_body()
    body["signed_message"]["publicKey"] = wallet.public_key
    unauthorized(await near.post(body), "Invalid signature")
    flipped = wallet.login_body()
    raw = bytearray(base64.b64decode(flipped["signed_message"]["signature"]))
    raw[0] ^= 1
    flipped["signed_message"]["signature"] = base64.b64encode(bytes(raw)).decode()
    unauthorized(await near.post(flipped), "Invalid signature")
    assert not near.rpc.queries("view_access_key")  # refused before asking the RPC


async def test_conversion_errors_are_400(near: NearEnv) -> None:
    wallet = near.wallet()

    def body(**signed: object) -> dict:
        value = wallet.login_body()
        value["signed_message"].update(signed)
        return value

    response = await near.post(body(publicKey="ed25519:0OIl"))
    assert response.status_code == 400 and response.json()["message"].startswith("invalid key data")
    response = await near.post(body(signature="***"))
    assert response.status_code == 400 and response.json()["code"] == "bad_request"
    short = base64.b64encode(b"\x01" * 63).decode()
    response = await near.post(body(signature=short))
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid signature: invalid signature length")
    response = await near.post(body(accountId="Alice.near"))
    assert response.status_code == 400 and "Account ID" in response.json()["message"]
    short_nonce = wallet.login_body()
    short_nonce["payload"]["nonce"] = short_nonce["payload"]["nonce"][:31]
    bad_request(await near.post(short_nonce), "Invalid nonce length: expected 32, got 31")


async def test_shape_errors_are_text(near: NearEnv) -> None:
    wallet = near.wallet()
    big = wallet.login_body()
    big["payload"]["nonce"][5] = 256
    missing = wallet.login_body()
    del missing["signed_message"]["signature"]
    for payload in (big, missing, {"payload": {}}, [], "x"):
        response = await near.post(payload)
        assert response.status_code == 422, payload
        assert response.text.startswith("Failed to deserialize the JSON body into the target type")
        assert response.headers["content-type"].startswith("text/plain")
    syntax = await near.client.post(
        "/v1/auth/near", content=b"{", headers={"content-type": "application/json"}
    )
    assert syntax.status_code == 400 and syntax.text.startswith("Failed to parse the request body")
    plain = await near.client.post("/v1/auth/near", content=b"{}")
    assert plain.status_code == 415


async def test_synthetic_email_taken_without_link(near: NearEnv) -> None:
    """An `<account>@near` user without a NEAR link: 401, nothing half-written (deviation I1)."""
    wallet = near.wallet()
    await login(near.client, f"{wallet.account_id}@near")
    db = near.server.services.db
    sessions_before = await db.fetchval("SELECT COUNT(*) FROM sessions")
    unauthorized(await near.post(wallet.login_body()), "Failed to create user")
    assert not await db.fetchval(
        "SELECT COUNT(*) FROM oauth_accounts WHERE provider = 'near' AND provider_user_id = $1",
        wallet.account_id,
    )
    assert await db.fetchval("SELECT COUNT(*) FROM sessions") == sessions_before


async def test_d12_near_users_are_never_admin(nursery: trio.Nursery, config: Config) -> None:
    """D12: even with `near` in AUTH_ADMIN_DOMAINS a wallet user is not admin."""
    rpc = FakeNearRpc()
    rpc_url = await nursery.start(serve_fake_near_rpc, rpc)
    server = await start_server(
        nursery, config, near_rpc_url=rpc_url, auth_admin_domains=("admin.org", "near")
    )
    wallet = FakeNearWallet(f"boss{uuid.uuid4().hex[:8]}.near")
    rpc.add_key(wallet.account_id, wallet.public_key)
    async with httpx2.AsyncClient(base_url=server.url) as client:
        token = (await client.post("/v1/auth/near", json=wallet.login_body())).json()["token"]
        response = await client.get("/v1/admin/users", headers=auth(token))
        assert response.status_code == 403


async def test_concurrent_first_logins_make_one_user(near: NearEnv) -> None:
    wallet = near.wallet()
    results: list[httpx2.Response] = []

    async def attempt() -> None:
        results.append(await near.post(wallet.login_body()))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(attempt)
    assert [r.status_code for r in results] == [200] * 4
    assert sum(r.json()["is_new_user"] for r in results) == 1
    count = await near.server.services.db.fetchval(
        "SELECT COUNT(*) FROM users WHERE email = $1", f"{wallet.account_id}@near"
    )
    assert count == 1
