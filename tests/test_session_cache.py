"""The session cache: requests after the first skip the database, and every change to a session
or a ban, on any replica or by hand in SQL, reaches every replica's cache (LISTEN/NOTIFY).
Losing the LISTEN connection empties and bypasses the cache until it listens again."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
import trio
import trio_asyncio

from privchat.auth.session_cache import SessionCache
from privchat.auth.sessions import Session
from privchat.runtime import Running
from privchat.store import Database, bans
from privchat.store.db import DatabaseUnavailable

from .conftest import auth, login, start_server
from .dbtools import with_database


async def _ready(server: Running) -> SessionCache:
    cache = server.services.sessions
    with trio.fail_after(10):
        await cache.wait_listening()
    return cache


async def _me(client: httpx2.AsyncClient, token: str) -> int:
    return (await client.get("/v1/users/me", headers=auth(token))).status_code


async def test_requests_after_the_first_are_served_from_memory(
    client: httpx2.AsyncClient, server: Running
) -> None:
    cache = await _ready(server)
    token = await login(client)
    hits, misses = cache.hits, cache.misses
    for _ in range(3):
        assert await _me(client, token) == 200
    assert (cache.hits - hits, cache.misses - misses) == (2, 1)
    assert await _me(client, "sess_" + "0" * 32) == 401  # unknown tokens are not kept
    assert len(cache) == 1
    metrics = (await client.get("/metrics")).text
    assert f'chat_api_session_cache_lookups_total{{result="hit"}} {float(cache.hits)}' in metrics
    assert "chat_api_session_cache_entries 1.0" in metrics


async def test_logout_on_one_replica_ends_the_session_on_another(
    nursery: trio.Nursery, config: Any
) -> None:
    a, b = await start_server(nursery, config), await start_server(nursery, config)
    cache_a, _ = await _ready(a), await _ready(b)
    async with httpx2.AsyncClient(base_url=a.url) as ca, httpx2.AsyncClient(base_url=b.url) as cb:
        token = await login(ca)
        assert await _me(ca, token) == 200
        assert await _me(ca, token) == 200
        assert len(cache_a) == 1
        session_id = await _session_id(a, token)
        r = await cb.post("/v1/auth/logout", json={"session_id": session_id}, headers=auth(token))
        assert r.status_code == 204
        await cache_a.synced(a.services.db)
        assert len(cache_a) == 0
        assert await _me(ca, token) == 401


async def _session_id(server: Running, token: str) -> str:
    return str(
        await server.services.db.fetchval(
            "SELECT id FROM sessions WHERE token_hash = $1",
            hashlib.sha256(token.encode()).hexdigest(),
        )
    )


async def test_changes_made_in_sql_reach_the_cache(
    client: httpx2.AsyncClient, server: Running
) -> None:
    cache = await _ready(server)
    db = server.services.db

    async def cached_user() -> tuple[str, uuid.UUID]:
        token = await login(client)
        assert await _me(client, token) == 200
        assert await _me(client, token) == 200
        user_id = await db.fetchval(
            "SELECT user_id FROM sessions WHERE token_hash = $1",
            hashlib.sha256(token.encode()).hexdigest(),
        )
        return token, user_id

    token, user_id = await cached_user()
    await db.execute(
        "UPDATE sessions SET expires_at = NOW() - INTERVAL '1 second' WHERE user_id = $1", user_id
    )
    await cache.synced(db)
    r = await client.get("/v1/users/me", headers=auth(token))
    assert r.status_code == 401 and r.json()["message"] == "Session has expired"

    token, user_id = await cached_user()
    await db.execute("DELETE FROM users WHERE id = $1", user_id)  # cascades to sessions
    await cache.synced(db)
    assert await _me(client, token) == 401

    token, user_id = await cached_user()
    assert cache.hits > 0
    await bans.create(db, user_id, bans.MANUAL, None, None)
    await cache.synced(db)
    found = await cache.find(db, token)
    assert found is not None and found.banned_at(datetime.now(UTC))
    await db.execute("UPDATE user_bans SET revoked_at = NOW() WHERE user_id = $1", user_id)
    await cache.synced(db)
    found = await cache.find(db, token)
    assert found is not None and not found.banned_at(datetime.now(UTC))


async def test_a_timed_ban_ends_on_the_clock_without_a_change(
    client: httpx2.AsyncClient, server: Running
) -> None:
    cache = await _ready(server)
    db = server.services.db
    token = await login(client)
    user_id = await db.fetchval(
        "SELECT user_id FROM sessions WHERE token_hash = $1",
        hashlib.sha256(token.encode()).hexdigest(),
    )
    await bans.create(db, user_id, bans.MANUAL, None, timedelta(hours=1))
    await cache.synced(db)
    session = await cache.find(db, token)
    assert session is not None and session.ban_ends is not None
    assert session.banned_at(session.ban_ends - timedelta(seconds=1))
    assert not session.banned_at(session.ban_ends + timedelta(seconds=1))


async def test_losing_the_listen_connection_empties_the_cache_and_listens_again(
    client: httpx2.AsyncClient, server: Running
) -> None:
    cache = await _ready(server)
    db = server.services.db

    async def listener_pid() -> int | None:
        return await db.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
            " AND datname = current_database()",
            "privchat listen privchat_auth",
        )

    token = await login(client)
    assert await _me(client, token) == 200
    assert len(cache) == 1
    before = await listener_pid()
    assert await db.fetchval("SELECT pg_terminate_backend($1)", before)
    with trio.fail_after(10):
        while (after := await listener_pid()) in (before, None):  # noqa: ASYNC110
            await trio.sleep(0.01)  # no event for "the server ended that connection"
        await cache.wait_listening()
    assert after != before
    assert len(cache) == 0  # what was cached while notifications could be missed is gone
    assert await _me(client, token) == 200
    assert await _me(client, token) == 200
    assert len(cache) == 1


async def test_without_its_listen_connection_the_cache_is_bypassed() -> None:
    token = "sess_" + "2" * 32
    db = _PausedDatabase({hashlib.sha256(token.encode()).hexdigest(): _session(uuid.uuid4())})
    db.answer.set()
    cache = SessionCache(ttl=60)  # not listening
    for _ in range(2):
        assert await cache.find(db, token) is not None
    assert len(cache) == 0 and cache.hits == 0


def _session(user_id: uuid.UUID) -> Session:
    now = datetime.now(UTC)
    return Session(uuid.uuid4(), user_id, now, now + timedelta(days=1))


async def test_during_a_database_outage_cached_sessions_still_answer() -> None:
    token = "sess_" + "3" * 32
    db = _PausedDatabase({hashlib.sha256(token.encode()).hexdigest(): _session(uuid.uuid4())})
    db.answer.set()
    cache = _listening_cache(ttl=60)
    assert await cache.find(db, token) is not None
    cache._set_listening(False)  # the leader died: its LISTEN connection went with it
    db.down = True
    assert await cache.find(db, token) is not None and cache.outage_hits == 1
    with pytest.raises(DatabaseUnavailable):  # nothing cached: no answer without the database
        await cache.find(db, "sess_" + "4" * 32)
    db.down = False
    assert await cache.find(db, token) is not None and cache.outage_hits == 1  # read again


class _PausedDatabase:
    """Answers session lookups from a dict, each only when the test lets it."""

    def __init__(self, sessions: dict[str, Session]) -> None:
        self.sessions = sessions
        self.asked = trio.Event()
        self.answer = trio.Event()
        self.down = False

    async def fetchrow(self, query: str, token_hash: str) -> dict[str, Any] | None:
        if self.down:
            raise DatabaseUnavailable("ConnectionRefusedError")
        self.asked.set()
        await self.answer.wait()
        s = self.sessions.get(token_hash)
        if s is None:
            return None
        return {
            "id": s.id,
            "user_id": s.user_id,
            "created_at": s.created_at,
            "expires_at": s.expires_at,
            "banned": False,
            "ban_ends": None,
            "near_account": None,
        }


def _listening_cache(**kwargs: Any) -> SessionCache:
    cache = SessionCache(**kwargs)
    cache.listening = True
    return cache


async def test_a_lookup_that_raced_a_change_is_not_kept() -> None:
    user = uuid.uuid4()
    token = "sess_" + "1" * 32
    db = _PausedDatabase({hashlib.sha256(token.encode()).hexdigest(): _session(user)})
    cache = _listening_cache(ttl=60)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.find, db, token)
        await db.asked.wait()
        cache._notified(str(user))  # the session changed while the read was in flight
        db.answer.set()
    assert len(cache) == 0
    await cache.find(db, token)
    assert len(cache) == 1


async def test_entries_are_bounded_in_time_and_number() -> None:
    now = [0.0]
    cache = _listening_cache(ttl=60, max_entries=2, clock=lambda: now[0])
    tokens = ["sess_" + str(i) * 32 for i in range(3)]
    db = _PausedDatabase(
        {hashlib.sha256(t.encode()).hexdigest(): _session(uuid.uuid4()) for t in tokens}
    )
    db.answer.set()
    for t in tokens:
        await cache.find(db, t)
    assert len(cache) == 2  # the oldest went
    hits = cache.hits
    await cache.find(db, tokens[2])
    assert cache.hits == hits + 1
    now[0] = 61.0
    await cache.find(db, tokens[2])
    assert cache.hits == hits + 1  # expired: read again
    cache._notified("not-a-uuid")  # a payload we do not understand empties the cache
    assert len(cache) == 0


async def test_the_cache_stays_off_when_notifications_do_not_come_back(database_url: str) -> None:
    """As behind a transaction-pooling proxy or with a misrouted DSN: the LISTEN connection
    works, but what the pool notifies never reaches it. Caching would then serve revoked
    sessions, so the cache never turns on (the supervisor retries with backoff)."""
    async with trio_asyncio.open_loop():
        db = await Database.connect(database_url, max_size=2)
        try:
            elsewhere = with_database(database_url, "postgres")
            db._connect_args = {**db._connect_args, "dsn": elsewhere}  # the listener's server
            cache = SessionCache(ttl=60, health_timeout=0.5)
            with (
                trio.fail_after(10),
                pytest.raises(ConnectionError, match="do not reach the LISTEN connection"),
            ):
                await cache.run(db)
            assert not cache.listening and len(cache) == 0
        finally:
            await db.close()
