"""Sessions (§1.3), logout (§2.2.4), mock-login (§2.2.5, D11) and the D9 cleanup."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import replace
from functools import partial

import httpx2
import trio
from hypercorn.trio import serve as hypercorn_serve

from privchat.app import create_app
from privchat.errors import ApiError
from privchat.runtime import Running, _cleanup, hypercorn_config
from privchat.services.registry import Services

from .conftest import auth, login

TS_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?\+00:00$")


async def test_mock_login_shape_and_token_format(
    client: httpx2.AsyncClient, server: Running
) -> None:
    email = f"mock-{uuid.uuid4().hex[:8]}@example.com"
    response = await client.post("/v1/auth/mock-login", json={"email": email, "name": "Mock"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expires_at"}  # no session_id
    token = body["token"]
    assert re.fullmatch(r"sess_[0-9a-f]{32}", token)
    assert TS_OFFSET.match(body["expires_at"])
    row = await server.services.db.fetchrow(
        "SELECT token_hash, expires_at - created_at AS life FROM sessions WHERE token_hash = $1",
        hashlib.sha256(token.encode()).hexdigest(),
    )
    assert row is not None and row["life"].days == 30  # only the hash is stored
    again = await client.post("/v1/auth/mock-login", json={"email": email, "name": "Other"})
    assert again.json()["token"] != token
    me = (await client.get("/v1/users/me", headers=auth(again.json()["token"]))).json()
    assert me["user"]["name"] == "Mock"  # existing users are not updated


async def test_mock_login_links_providers(client: httpx2.AsyncClient, server: Running) -> None:
    db = server.services.db
    await client.post(
        "/v1/auth/mock-login", json={"email": "zero-balance.near@near", "oauth_provider": "near"}
    )
    assert await db.fetchval(
        "SELECT COUNT(*) FROM oauth_accounts WHERE provider = 'near'"
        " AND provider_user_id = 'zero-balance.near'"
    )
    email = f"g-{uuid.uuid4().hex[:8]}@example.com"
    await client.post("/v1/auth/mock-login", json={"email": email, "oauth_provider": "Google"})
    assert await db.fetchval(
        "SELECT COUNT(*) FROM oauth_accounts WHERE provider = 'google' AND provider_user_id = $1",
        email,
    )
    other = f"x-{uuid.uuid4().hex[:8]}@example.com"
    ok = await client.post(
        "/v1/auth/mock-login", json={"email": other, "oauth_provider": "myspace"}
    )
    assert ok.status_code == 200
    assert not await db.fetchval(
        "SELECT COUNT(*) FROM oauth_accounts a JOIN users u ON u.id = a.user_id WHERE u.email = $1",
        other,
    )
    await server.services.activity.flush()
    assert not await db.fetchval(
        "SELECT COUNT(*) FROM user_activity_log l JOIN users u ON u.id = l.user_id WHERE u.email = $1",
        other,
    )  # mock-login records no analytics


async def serve_services(nursery: trio.Nursery, svc: Services) -> str:
    """privchat's app over `svc` on a real port (for configurations the full runtime cannot
    start in tests, e.g. DEV=false without a dstack agent)."""
    app = create_app(svc)
    binds = await nursery.start(
        partial(hypercorn_serve, app, hypercorn_config(svc.config, "127.0.0.1:0"))
    )
    return binds[0]


async def test_d11_mock_login_absent_without_dev(nursery: trio.Nursery, server: Running) -> None:
    """D11: with DEV=false the path is unknown (404 JSON), whatever the body."""
    svc = replace(server.services, config=replace(server.services.config, dev=False))
    url = await serve_services(nursery, svc)
    async with httpx2.AsyncClient(base_url=url) as c:
        response = await c.post("/v1/auth/mock-login", json={"email": "a@admin.org"})
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert not await svc.db.fetchval("SELECT COUNT(*) FROM users WHERE email = 'a@admin.org'")


async def test_logout_deletes_only_that_session(
    client: httpx2.AsyncClient, server: Running
) -> None:
    email = f"logout-{uuid.uuid4().hex[:8]}@example.com"
    keep = await login(client, email)
    drop = await login(client, email)
    session_id = await server.services.db.fetchval(
        "SELECT id FROM sessions WHERE token_hash = $1", hashlib.sha256(drop.encode()).hexdigest()
    )
    # any of the caller's sessions, not necessarily the one in the header
    response = await client.post(
        "/v1/auth/logout", json={"session_id": str(session_id)}, headers=auth(keep)
    )
    assert response.status_code == 204 and response.content == b""
    gone = await client.get("/v1/users/me", headers=auth(drop))
    assert gone.status_code == 401 and gone.json()["message"] == "Session not found"
    assert (await client.get("/v1/users/me", headers=auth(keep))).status_code == 200
    again = await client.post(
        "/v1/auth/logout", json={"session_id": str(session_id)}, headers=auth(keep)
    )
    assert again.status_code == 404
    assert again.json() == {
        "code": "not_found",
        "message": "Session id not found",
        "details": "The provided session id does not match any active session.",
    }


async def test_logout_of_a_foreign_session_is_403(
    client: httpx2.AsyncClient, server: Running
) -> None:
    victim = await login(client)
    attacker = await login(client)
    victim_session = await server.services.db.fetchval(
        "SELECT id FROM sessions WHERE token_hash = $1", hashlib.sha256(victim.encode()).hexdigest()
    )
    response = await client.post(
        "/v1/auth/logout", json={"session_id": str(victim_session)}, headers=auth(attacker)
    )
    assert response.status_code == 403
    assert response.json() == {
        "code": "forbidden",
        "message": "You can only logout your own sessions",
    }
    assert (await client.get("/v1/users/me", headers=auth(victim))).status_code == 200


async def test_logout_bad_input(client: httpx2.AsyncClient) -> None:
    token = await login(client)
    for kwargs, status in (
        ({"json": {"session_id": "not-a-uuid"}}, 422),
        ({"json": {"session_id": 5}}, 422),
        ({"json": {}}, 422),
        ({"content": b"{", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b'{"session_id": "x"}'}, 415),
    ):
        headers = {**auth(token), **kwargs.pop("headers", {})}
        response = await client.post("/v1/auth/logout", headers=headers, **kwargs)
        assert response.status_code == status, kwargs
        assert response.headers["content-type"].startswith("text/plain")
    unauthenticated = await client.post("/v1/auth/logout", content=b"{nope")
    assert unauthenticated.status_code == 401  # auth runs before the body is parsed


async def test_d9_cleanup_deletes_expired_rows(server: Running) -> None:
    """D9: the supervised cleanup job deletes expired sessions, stale OAuth states and nonces."""
    db = server.services.db
    user_id = uuid.uuid4()
    await db.execute("INSERT INTO users (id, email) VALUES ($1, $2)", user_id, f"{user_id}@x.org")
    stale, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    await db.execute(
        "INSERT INTO sessions (user_id, expires_at, token_hash) VALUES"
        " ($1, NOW() - INTERVAL '1 second', $2), ($1, NOW() + INTERVAL '1 day', $3)",
        user_id,
        stale,
        fresh,
    )
    await db.execute(
        "INSERT INTO oauth_states (state, provider, redirect_uri, created_at) VALUES"
        " ($1, 'google', 'http://x', NOW() - INTERVAL '11 minutes'),"
        " ($2, 'google', 'http://x', NOW())",
        stale,
        fresh,
    )
    await db.execute(
        "INSERT INTO near_used_nonces (nonce_hex, used_at) VALUES"
        " ($1, NOW() - INTERVAL '11 minutes'), ($2, NOW())",
        (stale * 2)[:64],
        (fresh * 2)[:64],
    )
    await _cleanup(db)
    sessions = await db.fetch("SELECT token_hash FROM sessions WHERE user_id = $1", user_id)
    assert [r["token_hash"] for r in sessions] == [fresh]
    states = await db.fetch("SELECT state FROM oauth_states WHERE state IN ($1, $2)", stale, fresh)
    assert [r["state"] for r in states] == [fresh]
    nonces = await db.fetch(
        "SELECT nonce_hex FROM near_used_nonces WHERE nonce_hex IN ($1, $2)",
        (stale * 2)[:64],
        (fresh * 2)[:64],
    )
    assert [r["nonce_hex"] for r in nonces] == [(fresh * 2)[:64]]


async def test_scenario_53_error_helpers() -> None:
    """Scenario 53: bad_request has code bad_request and no details; details only when set;
    the invalid-token error is 401 with details."""
    import json

    plain = json.loads(await ApiError(400, "nope").response().get_data())
    assert plain == {"code": "bad_request", "message": "nope"}
    detailed = json.loads(await ApiError(401, "Session not found", "log in").response().get_data())
    assert detailed == {"code": "unauthorized", "message": "Session not found", "details": "log in"}
