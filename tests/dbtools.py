"""Throwaway databases for tests that need an empty one (migrations, subprocess servers)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg


def _run(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run an asyncio coroutine to completion from anywhere, even inside a Trio test."""
    result: list[Any] = []

    def target() -> None:
        result.append(asyncio.run(fn()))  # type: ignore[arg-type]

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    assert result, "database helper failed"
    return result[0]


def with_database(dsn: str, name: str) -> str:
    """`dsn` pointed at the database `name` on the same server."""
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return f"{base}?{query}" if query else base


async def admin(dsn: str, sql: str) -> None:
    """Run one statement on its own connection (CREATE/DROP DATABASE)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def empty_database(database_url: str) -> Iterator[str]:
    """Create an empty database next to the test database; drop it afterwards."""
    name = f"privchat_empty_{uuid.uuid4().hex[:12]}"
    server = with_database(database_url, "postgres")
    _run(lambda: admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(database_url, name)
    finally:
        _run(lambda: admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def query(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return _run(run)
