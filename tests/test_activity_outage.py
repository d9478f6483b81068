"""Activity rows survive a database outage (issue 14, finding 10).

privchat reaches PostgreSQL through a loopback TCP relay that the test takes down (every open
connection cut, new ones closed at once, as during a restart) and brings back. Rows recorded
meanwhile are held and written once the database answers again; a full retry queue drops the
oldest rows, counted, with one log line.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx2
import pytest
import trio
import trio_asyncio

from privchat.runtime import Running
from privchat.services.activity import ActivityWriter
from privchat.store import Database

from .conftest import login


class Relay:
    """Forwards loopback TCP connections to PostgreSQL while `up`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.up = True
        self.port = 0
        self._cut: set[trio.CancelScope] = set()

    def down(self) -> None:
        self.up = False
        for scope in self._cut:
            scope.cancel()

    async def handle(self, client: trio.SocketStream) -> None:
        async with client:
            if not self.up:
                return
            with trio.CancelScope() as scope:
                self._cut.add(scope)
                try:
                    server = await trio.open_tcp_stream(*self.target)
                    async with server, trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, server, nursery.cancel_scope)
                        nursery.start_soon(self._pump, server, client, nursery.cancel_scope)
                finally:
                    self._cut.discard(scope)

    @staticmethod
    async def _pump(a: trio.SocketStream, b: trio.SocketStream, done: trio.CancelScope) -> None:
        try:
            while data := await a.receive_some(65536):
                await b.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        done.cancel()


@asynccontextmanager
async def relayed_database(database_url: str) -> AsyncIterator[tuple[Relay, Database]]:
    parts = urlsplit(database_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, relay.handle, 0, host="127.0.0.1")
        )
        relay.port = listeners[0].socket.getsockname()[1]
        netloc = f"{parts.username or 'postgres'}@127.0.0.1:{relay.port}"
        async with trio_asyncio.open_loop():
            db = await Database.connect(
                urlunsplit(parts._replace(netloc=netloc)), max_size=2, connect_timeout=2
            )
            try:
                yield relay, db
            finally:
                await db.close()
        nursery.cancel_scope.cancel()


async def _user(client: httpx2.AsyncClient, server: Running) -> uuid.UUID:
    token = await login(client)
    return await server.services.db.fetchval(  # type: ignore[no-any-return]
        "SELECT user_id FROM sessions WHERE token_hash = $1",
        hashlib.sha256(token.encode()).hexdigest(),
    )


async def _rows(server: Running, user_id: uuid.UUID) -> list[str]:
    rows = await server.services.db.fetch(
        "SELECT metadata->>'n' AS n FROM user_activity_log WHERE user_id = $1"
        " AND activity_type = 'response' ORDER BY (metadata->>'n')::int",
        user_id,
    )
    return [r["n"] for r in rows]


async def test_rows_recorded_during_an_outage_are_written_when_it_ends(
    client: httpx2.AsyncClient, server: Running
) -> None:
    user_id = await _user(client, server)
    async with relayed_database(str(server.services.config.database_url)) as (relay, db):
        writer = ActivityWriter(db, linger=0.01, retry_delays=(0.05, 0.2))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            writer.record(user_id, "response", metadata={"n": 0})
            with trio.fail_after(30):
                await writer.flush()
            relay.down()
            for n in range(1, 6):
                writer.record(user_id, "response", metadata={"n": n})
            with trio.fail_after(30):
                await writer.wait_holding()  # the batch of five failed at once
            assert writer.held == 5
            assert await _rows(server, user_id) == ["0"]
            relay.up = True
            with trio.fail_after(30):
                await writer.flush()
            assert (writer.written, writer.dropped, writer.held) == (6, 0, 0)
            nursery.cancel_scope.cancel()
    assert await _rows(server, user_id) == ["0", "1", "2", "3", "4", "5"]


async def test_a_full_retry_queue_drops_the_oldest_counted_and_logged_once(
    client: httpx2.AsyncClient, server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = await _user(client, server)
    async with relayed_database(str(server.services.config.database_url)) as (relay, db):
        writer = ActivityWriter(db, linger=0.01, retry_delays=(0.05, 0.2), retry_capacity=3)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            relay.down()
            for n in range(1, 8):
                writer.record(user_id, "response", metadata={"n": n})
            with trio.fail_after(30):
                await writer.wait_holding()
            assert (writer.held, writer.dropped) == (3, 4)
            relay.up = True
            with trio.fail_after(30):
                await writer.flush()
            assert (writer.written, writer.dropped, writer.held) == (3, 4, 0)
            nursery.cancel_scope.cancel()
    assert await _rows(server, user_id) == ["5", "6", "7"]
    full = [r for r in caplog.records if r.getMessage().startswith("activity retry queue full")]
    assert len(full) == 1


async def test_metrics_export_written_dropped_and_held_rows(client: httpx2.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert 'chat_api_activity_rows_total{outcome="dropped"} 0.0' in text
    assert "chat_api_activity_rows_held 0.0" in text
