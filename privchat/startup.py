"""Start-up failures that say what to fix.

The CLI prints each as one line without a traceback: a `ConfigError` exits 2, and so does a
`PatroniError` (no `PATRONI_CLUSTER_URL` endpoint answered, or no leader within
`DATABASE_WAIT_SECONDS`); a `StartupError` (something outside privchat: the database, the listen
address) exits 1. The translations here
turn the library's exception into a message that names the variable and the value to check.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg
import trio

from .config import Config


class StartupError(Exception):
    """privchat cannot start for a reason outside it; the message says what to do (exit 1)."""


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = next(
            (e for e in exc.exceptions if not isinstance(e, trio.Cancelled)), exc.exceptions[0]
        )
    return exc


def _database_place(config: Config, dsn: str) -> tuple[str, int, str, str, str]:
    """(host, port, database, user, which variables) of the server `dsn` points at."""
    parts = urlsplit(dsn)
    names = "DATABASE_URL" if config.database_url else "DATABASE_HOST/DATABASE_PORT"
    return (
        parts.hostname or "localhost",
        parts.port or 5432,
        parts.path.lstrip("/") or config.database_name,
        parts.username or config.database_user,
        names,
    )


def database_hint(exc: BaseException, config: Config, dsn: str) -> str | None:
    """What to fix when connecting to PostgreSQL failed with `exc`; None for anything else."""
    host, port, name, user, names = _database_place(config, dsn)
    dev = "or run `privchat dev` for an embedded database"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the database host {host!r} ({names}): fix {names}, {dev}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (
            f'database "{name}" does not exist on {host}:{port}: create it with '
            f"`createdb -h {host} -p {port} -U {user} {name}`, or set DATABASE_NAME, {dev}"
        )
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return (
            f"PostgreSQL on {host}:{port} refused user {user!r}: check DATABASE_USER and "
            "DATABASE_PASSWORD(_FILE)"
        )
    if isinstance(exc, TimeoutError | trio.TooSlowError):
        return f"PostgreSQL on {host}:{port} did not answer in time ({names}); {dev}"
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"nothing accepts connections on {host}:{port}: start PostgreSQL or fix {names}, {dev}"
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return (
            f"cannot connect to PostgreSQL on {host}:{port} ({reason}): start it or fix {names}, "
            f"{dev}"
        )
    return None


@asynccontextmanager
async def explained_database_errors(config: Config, dsn: str) -> AsyncIterator[None]:
    """Connection failures inside become a `StartupError` that says what to fix."""
    try:
        yield
    except Exception as exc:
        hint = database_hint(first_error(exc), config, dsn)
        if hint is None:
            raise
        raise StartupError(hint) from None


def bind_hint(exc: BaseException, bind: str) -> str | None:
    """What to fix when listening on `bind` (host:port) failed with `exc`."""
    if not isinstance(exc, OSError):
        return None
    where = f"{bind} (SERVER_HOST/SERVER_PORT; `privchat dev --port`)"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"the address {where} is already in use: stop what listens there or pick another port"
        )
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {where}: use a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: no such address on this machine"
    return None
