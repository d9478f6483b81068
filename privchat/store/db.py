"""asyncpg under trio-asyncio. This is the only module that calls `aio_as_trio`.

The pool remembers the trio-asyncio loop it was opened in, so any Trio task of the same run can
use it, whether or not it inherited the loop's context variable. Every method is a Trio checkpoint. Cancellation is safe: a cancelled query cancels the asyncio
task running it, and asyncpg resets the connection when it goes back to the pool.
"""

from __future__ import annotations

import heapq
import json
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import trio
import trio_asyncio

Record = asyncpg.Record

# The database is away (down, restarting, failing over, unreachable), rather than rejecting the
# statement: worth trying the same statement again later.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed", pool closing
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, starting up
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a replica, until the failover is followed
)


def unavailable(error: BaseException) -> bool:
    """Whether `error` means the database could not run the statement now, not that it refused it."""
    return isinstance(error, _UNAVAILABLE)


def _forget_cancelled_timers(loop: Any) -> None:
    """Make `loop` drop cancelled timers instead of keeping them until they would have fired.

    asyncpg schedules a command timeout (60 s) per query and an idle timeout (300 s) per pool
    release with `loop.call_later`, and cancels each when it is no longer needed. trio-asyncio
    0.16's loop keeps cancelled handles in its heap (`_timer_handle_cancelled` does nothing),
    each with the context it captured: about 12 KB per request, alive for up to 300 s. Here,
    like asyncio's own loop, the heap is rebuilt without them once they are half of it. Timers
    that are not cancelled fire exactly as before, so every timeout still holds.
    """
    if getattr(loop, "_privchat_forgets_cancelled_timers", False):
        return
    cancelled = 0

    def timer_handle_cancelled(_handle: Any) -> None:
        nonlocal cancelled
        cancelled += 1
        timers: list[Any] = loop._timers  # trio-asyncio's heap; tests/test_db_timers.py pins it
        if cancelled > 64 and 2 * cancelled > len(timers):
            timers[:] = [t for t in timers if not t.cancelled()]
            heapq.heapify(timers)
            cancelled = 0

    loop._timer_handle_cancelled = timer_handle_cancelled
    loop._privchat_forgets_cancelled_timers = True


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """Skips asyncpg's reset query on release: one round trip less per pooled query.

    privchat sets no session state (no SET, LISTEN or cursors); open transactions are still
    rolled back on release, and the one advisory lock (migrations) is released explicitly.
    """

    def get_reset_query(self) -> str:
        return ""


class Connection:
    """One checked-out connection: queries, and transactions on it."""

    def __init__(self, conn: asyncpg.Connection, loop: Any) -> None:
        self._conn = conn
        self._loop = loop

    def _aio(self, proc: Any) -> Any:
        return trio_asyncio.aio_as_trio(proc, loop=self._loop)

    async def fetch(self, query: str, *args: Any) -> list[Record]:
        return await self._aio(self._conn.fetch)(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Record | None:
        return await self._aio(self._conn.fetchrow)(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._aio(self._conn.fetchval)(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self._aio(self._conn.execute)(query, *args)

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        await self._aio(self._conn.executemany)(query, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        tx = self._conn.transaction()
        await self._aio(tx.start)()
        try:
            yield self
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._aio(tx.rollback)()
            raise
        else:
            await self._aio(tx.commit)()


class Listening:
    """A LISTEN connection: `lost` is set once it no longer delivers notifications."""

    def __init__(self, conn: Connection, lost: trio.Event) -> None:
        self.conn = conn
        self.lost = lost


class Database:
    """The pool every repository shares. Open with `Database.connect`, inside a trio-asyncio loop."""

    def __init__(self, pool: asyncpg.Pool, loop: Any, connect_args: dict[str, Any]) -> None:
        self._pool = pool
        self._loop = loop
        self._connect_args = connect_args  # dsn, ssl, timeout: for `listen()`'s own connection
        self._listeners: set[trio.Event] = set()

    def _aio(self, proc: Any) -> Any:
        return trio_asyncio.aio_as_trio(proc, loop=self._loop)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        max_size: int = 10,
        tls: bool = False,
        connect_timeout: float = 10.0,
        loop: Any = None,
    ) -> Database:
        ssl: Any = False
        if tls:
            # The reference's rule: try TLS without verification, fall back to plaintext.
            ctx = ssl_module.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl_module.CERT_NONE
            ssl = ctx
        loop = loop or trio_asyncio.current_loop.get()
        if loop is None:
            raise RuntimeError("Database.connect must run inside trio_asyncio.open_loop()")
        _forget_cancelled_timers(loop)
        connect_args = {"dsn": dsn, "ssl": ssl, "timeout": connect_timeout}
        pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool, loop=loop)(
            **connect_args,
            min_size=1,
            max_size=max_size,
            command_timeout=60,
            init=_init_connection,
            connection_class=_PooledConnection,
        )
        return cls(pool, loop, connect_args)

    async def reconnect(self, dsn: str, *, max_size: int = 10, tls: bool = False) -> None:
        """Point every later query at a new pool for `dsn` (a new Patroni leader, D7).

        Queries already running finish on the old pool, which is closed after them.
        """
        other = await Database.connect(dsn, max_size=max_size, tls=tls, loop=self._loop)
        old = self._pool
        self._pool = other._pool
        self._connect_args = other._connect_args
        for lost in self._listeners:  # listeners follow the leader too
            lost.set()
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            await self._aio(old.close)()

    async def close(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await self._aio(self._pool.close)()

    @property
    def size(self) -> int:
        return self._pool.get_size()

    @property
    def idle(self) -> int:
        return self._pool.get_idle_size()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        conn = await self._aio(self._pool.acquire)()
        try:
            yield Connection(conn, self._loop)
        finally:
            with trio.CancelScope(shield=True):
                await self._aio(self._pool.release)(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def listen(
        self, channel: str, on_payload: Callable[[str], None]
    ) -> AsyncIterator[Listening]:
        """LISTEN on `channel` over a connection of its own (pooled ones skip their reset),
        shown in `pg_stat_activity` as application `privchat listen <channel>`.

        `on_payload` runs for each notification, in order. The yielded `Listening.lost` is set
        when that connection ends or the database moves to a new leader; then leave the block.
        """
        conn = await self._aio(asyncpg.connect)(
            **self._connect_args, server_settings={"application_name": f"privchat listen {channel}"}
        )
        lost = trio.Event()
        self._listeners.add(lost)
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await self._aio(conn.add_listener)(channel, lambda *args: on_payload(args[-1]))
            yield Listening(Connection(conn, self._loop), lost)
        finally:
            self._listeners.discard(lost)
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._aio(conn.close)()

    async def fetch(self, query: str, *args: Any) -> list[Record]:
        return await self._aio(self._pool.fetch)(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Record | None:
        return await self._aio(self._pool.fetchrow)(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._aio(self._pool.fetchval)(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self._aio(self._pool.execute)(query, *args)

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        await self._aio(self._pool.executemany)(query, args)
