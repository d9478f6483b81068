"""asyncpg under trio-asyncio. This is the only module that calls `aio_as_trio`.

The pool remembers the trio-asyncio loop it was opened in, so any Trio task of the same run can
use it, whether or not it inherited the loop's context variable. Every method is a Trio checkpoint. Cancellation is safe: a cancelled query cancels the asyncio
task running it, and asyncpg resets the connection when it goes back to the pool.
"""

from __future__ import annotations

import heapq
import json
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import trio
import trio_asyncio

Record = asyncpg.Record

RETRY_SECONDS = 2.0  # how long a statement that never reached a writable leader is retried
RETRY_AFTER_SECONDS = 1  # what a 503 for a lost database tells clients


class DatabaseUnavailable(Exception):
    """No writable database right now (leader lost, failover under way): answered with 503."""


# Failures that say nothing was executed: the connection was never made, went to a server that
# is not (or no longer) the writable leader, or the server refused to start.
_NOT_EXECUTED = (
    OSError,
    asyncpg.TargetServerAttributeNotMatched,
    asyncpg.CannotConnectNowError,
    asyncpg.ReadOnlySQLTransactionError,  # 25006: a leader being demoted, or not yet promoted
    asyncpg.TooManyConnectionsError,
)
# Failures that may have come after the statement was sent: not retried, the client decides.
_CONNECTION_LOST = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # seen when the server dies in the middle of a query
    TimeoutError,
)


# What `Pool.acquire` raises on a pool that `Database.reconnect` replaced (a new leader) while
# a request was waiting for one of its connections: nothing was executed, the new pool will do.
_POOL_REPLACED = ("pool is closing", "pool is closed")
# What a query on an acquired connection raises when the server ended that connection (a
# leader shutting down) before the query was sent: asyncpg released it to the pool already.
_RELEASED = "connection has been released back to the pool"


def _kind(exc: BaseException) -> str | None:
    """'retry' (nothing executed), 'lost' (outcome unknown) or None (not a database outage)."""
    if isinstance(exc, _NOT_EXECUTED):
        return "retry"
    if isinstance(exc, asyncpg.InterfaceError) and (
        str(exc) in _POOL_REPLACED or str(exc).endswith(_RELEASED)
    ):
        return "retry"
    if isinstance(exc, _CONNECTION_LOST):
        if isinstance(exc, asyncpg.InterfaceError) and "closed" not in str(exc):
            return None  # misuse of the API, not an outage
        return "lost"
    return None


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
    return isinstance(error, (DatabaseUnavailable, *_UNAVAILABLE))


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

    def __init__(
        self, conn: asyncpg.Connection, loop: Any, on_outage: Callable[[], None] = lambda: None
    ) -> None:
        self._conn = conn
        self._loop = loop
        self._on_outage = on_outage

    async def _call(self, proc: Any, *args: Any) -> Any:
        try:
            return await trio_asyncio.aio_as_trio(proc, loop=self._loop)(*args)
        except Exception as exc:
            if _kind(exc) is None:
                raise
            if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
                self._conn.terminate()  # a connection to a replica is of no use to privchat
            self._on_outage()
            raise DatabaseUnavailable(type(exc).__name__) from exc

    async def fetch(self, query: str, *args: Any) -> list[Record]:
        return await self._call(self._conn.fetch, query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Record | None:
        return await self._call(self._conn.fetchrow, query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._call(self._conn.fetchval, query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self._call(self._conn.execute, query, *args)

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        await self._call(self._conn.executemany, query, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        tx = self._conn.transaction()
        await self._call(tx.start)
        try:
            yield self
        except BaseException:
            with trio.CancelScope(shield=True):
                try:
                    await self._call(tx.rollback)
                except DatabaseUnavailable:
                    pass  # the server rolls back what a lost connection left open
            raise
        else:
            await self._call(tx.commit)


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
        self.outage = trio.Event()  # set when a statement found no writable database
        self.outages = 0
        self.unavailable_since: float | None = None  # trio time of the first failure in a row

    def _noticed_outage(self) -> None:
        self.outages += 1
        if self.unavailable_since is None:
            self.unavailable_since = trio.current_time()
        self.outage.set()

    def _noticed_success(self) -> None:
        self.unavailable_since = None

    async def _retrying(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Run `operation`; while it fails without having executed anything (no writable
        leader yet), retry it for up to `RETRY_SECONDS`. Any outage ends in `DatabaseUnavailable`."""
        deadline = trio.current_time() + RETRY_SECONDS
        pause = 0.05
        while True:
            try:
                result = await operation()
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                kind = _kind(exc)
                if kind is None:
                    raise
                self._noticed_outage()
                if kind == "lost" or trio.current_time() + pause > deadline:
                    raise DatabaseUnavailable(type(exc).__name__) from exc
                await trio.sleep(pause)
                pause = min(pause * 2, 0.25)
            else:
                self._noticed_success()
                return result

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
        read_write: bool = False,
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
        connect_args: dict[str, Any] = {"dsn": dsn, "ssl": ssl, "timeout": connect_timeout}
        if read_write:  # a DSN listing every cluster member: connect to the writable one
            connect_args["target_session_attrs"] = "read-write"
        pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool, loop=loop)(
            **connect_args,
            min_size=1,
            max_size=max_size,
            command_timeout=60,
            init=_init_connection,
            connection_class=_PooledConnection,
        )
        return cls(pool, loop, connect_args)

    async def reconnect(
        self, dsn: str, *, max_size: int = 10, tls: bool = False, read_write: bool = False
    ) -> None:
        """Point every later query at a new pool for `dsn` (a new Patroni leader, D7).

        Queries already running finish on the old pool, which is closed after them.
        """
        other = await Database.connect(
            dsn, max_size=max_size, tls=tls, loop=self._loop, read_write=read_write
        )
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
        async def acquire() -> tuple[asyncpg.Pool, asyncpg.Connection]:
            pool = self._pool  # each attempt: the pool may have been replaced meanwhile
            return pool, await self._aio(pool.acquire)()

        pool, conn = await self._retrying(acquire)
        try:
            yield Connection(conn, self._loop, self._noticed_outage)
        finally:
            with trio.CancelScope(shield=True):
                await self._aio(pool.release)(conn)

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
            if lost.is_set():  # ended, moved, or silent (half-open): nothing to say goodbye to
                conn.terminate()
            else:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._aio(conn.close)()

    async def _run(self, method: str, *args: Any) -> Any:
        async def once() -> Any:
            async with _acquired(self, self._pool) as conn:  # the newest pool, each attempt
                return await trio_asyncio.aio_as_trio(getattr(conn, method), loop=self._loop)(*args)

        return await self._retrying(once)

    async def fetch(self, query: str, *args: Any) -> list[Record]:
        return await self._run("fetch", query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Record | None:
        return await self._run("fetchrow", query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run("fetchval", query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self._run("execute", query, *args)

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        await self._run("executemany", query, args)


@asynccontextmanager
async def _acquired(db: Database, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A raw pooled connection; one refused as read-only (25006) is closed, not reused."""
    conn = await db._aio(pool.acquire)()
    try:
        yield conn
    except asyncpg.ReadOnlySQLTransactionError:
        conn.terminate()
        raise
    finally:
        with trio.CancelScope(shield=True):
            await db._aio(pool.release)(conn)
