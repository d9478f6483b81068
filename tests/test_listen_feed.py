"""The LISTEN connection behind every cross-replica cache (store/listen_feed.py) is trusted only
while it proves it delivers: a connection that goes silent without closing (half-open TCP, a
stalled proxy) is given up, and the caches are bypassed, within `health_period` plus
`health_timeout`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
import trio
import trio_asyncio

from privchat.auth.session_cache import SessionCache
from privchat.services.changes import ChangeFeed
from privchat.store import Database
from privchat.store.listen_feed import ListenFeed


class Stall:
    """A TCP forwarder to PostgreSQL that can go silent: once `stalled` is set, the bytes of
    connections it already carries are read and dropped both ways, and nothing is closed."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.stalled = False
        self.port = 0

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        stalled_from_start = self.stalled
        server = await trio.open_tcp_stream(*self.target)
        async with client, server, trio.open_nursery() as nursery:

            async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                while data := await source.receive_some(65536):
                    if not (self.stalled and not stalled_from_start):
                        await sink.send_all(data)
                nursery.cancel_scope.cancel()

            nursery.start_soon(pump, client, server)
            nursery.start_soon(pump, server, client)


@asynccontextmanager
async def _through(stall: Stall, database_url: str) -> AsyncIterator[Database]:
    """A pool straight to PostgreSQL whose LISTEN connections go through `stall`."""
    db = await Database.connect(database_url, max_size=2)
    try:
        parts = urlsplit(database_url)
        via = parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{stall.port}"))
        db._connect_args = {**db._connect_args, "dsn": urlunsplit(via)}
        yield db
    finally:
        await db.close()


@pytest.mark.parametrize(
    "make", [lambda: SessionCache(ttl=60), ChangeFeed], ids=["sessions", "changes"]
)
async def test_a_listen_connection_that_goes_silent_is_given_up(
    database_url: str, nursery: trio.Nursery, make: type[ListenFeed]
) -> None:
    parts = urlsplit(database_url)
    stall = Stall(parts.hostname or "127.0.0.1", parts.port or 5432)
    await nursery.start(stall.serve)
    feed = make()
    feed.health_period, feed.health_timeout = 0.2, 0.5
    async with trio_asyncio.open_loop(), _through(stall, database_url) as db:

        async def stall_once_listening() -> None:
            await feed.wait_listening()
            await feed.synced(db)  # delivers while the forwarder forwards
            stall.stalled = True  # the connection stays open but nothing comes back

        async with trio.open_nursery() as inner:
            inner.start_soon(stall_once_listening)
            # Lost sooner than STABLE_SECONDS after it began: raised, so the supervisor retries
            # with backoff (and the next connection, through the same forwarder, works again).
            with trio.fail_after(10), pytest.raises(ConnectionError, match="keeps ending"):
                await feed.run(db)
    assert stall.stalled and not feed.listening
