"""Patroni discovery and leader following (platform.md §1.7, D7)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import trio
import trio_asyncio

from privchat.store.db import Database, _kind
from privchat.store.patroni import PatroniError, parse_cluster

from .conftest import start_server
from .fakes import FakeRequest, Reply, serve_handler


def _member(
    name: str, host: str, role: str, state: str = "running", **extra: Any
) -> dict[str, Any]:
    return {"name": name, "host": host, "port": 5432, "role": role, "state": state, **extra}


def test_classification() -> None:
    cluster = parse_cluster(
        {
            "members": [
                _member("a", "10.0.0.1", "leader"),
                _member("b", "10.0.0.2", "replica", "streaming", lag="unknown"),
                _member("c", "10.0.0.3", "sync_standby", lag=1024),
                _member("d", "10.0.0.4", "replica", "stopped"),
                _member("e", "10.0.0.5", "standby_leader"),
                _member("f", "10.0.0.6", "master"),  # the last leader listed wins
            ]
        }
    )
    assert cluster.leader is not None and cluster.leader.name == "f"
    assert [m.name for m in cluster.replicas] == ["b", "c"]
    assert cluster.replicas[0].lag is None and cluster.replicas[1].lag == 1024
    assert parse_cluster({"members": [_member("x", "h", "replica")]}).leader is None
    for bad in ({}, {"members": "no"}, {"members": [{"name": "x"}]}):
        with pytest.raises(PatroniError):
            parse_cluster(bad)


async def test_follows_a_new_leader_without_restart(
    nursery: trio.Nursery, config, database_url: str
) -> None:  # noqa: ANN001
    parts = urlsplit(database_url)
    document: dict[str, Any] = {"members": [_member("pg-1", "127.0.0.1", "leader")]}
    available = True

    async def patroni(request: FakeRequest) -> Reply:
        assert request.path == "/cluster"
        return Reply.json(document) if available else Reply(503, b"down")

    base = await nursery.start(serve_handler, patroni)
    server = await start_server(
        nursery,
        config,
        database_url=None,
        database_user=parts.username or "postgres",
        database_password=parts.password or "",
        database_name=parts.path.lstrip("/"),
        database_primary_app_id="chat-db",
        patroni_cluster_url=f"{base}/cluster",
        database_refresh_interval=3600.0,
    )
    db = server.services.db
    follower = server.services.patroni
    assert follower.leader.host == "127.0.0.1"
    assert await db.fetchval("SELECT 1") == 1

    available = False  # a failed refresh keeps the current leader
    await follower.refresh()
    assert follower.changes == 0 and await db.fetchval("SELECT 2") == 2

    available = True
    document = {
        "members": [_member("pg-1", "127.0.0.1", "replica"), _member("pg-2", "localhost", "leader")]
    }
    old_pool = db._pool
    cache = server.services.sessions

    async def listener_pid() -> int | None:
        with trio.fail_after(10):
            await cache.wait_listening()
        return await db.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
            " AND datname = current_database()",
            "privchat listen privchat_auth",
        )

    before = await listener_pid()
    assert before is not None
    await follower.refresh()
    assert follower.changes == 1 and follower.leader.name == "pg-2"
    assert db._pool is not old_pool and old_pool._closed
    assert await db.fetchval("SELECT 3") == 3  # every query now goes to the new leader's pool
    # The session cache gave up its LISTEN connection to the old leader and listens anew.
    with trio.fail_after(10):
        while await listener_pid() in (before, None):  # noqa: ASYNC110
            await trio.sleep(0.01)  # the old connection ends asynchronously


async def test_no_leader_stops_startup(nursery: trio.Nursery, config) -> None:  # noqa: ANN001
    async def patroni(request: FakeRequest) -> Reply:
        return Reply.json({"members": [_member("pg-1", "127.0.0.1", "replica")]})

    base = await nursery.start(serve_handler, patroni)
    with pytest.RaisesGroup(
        pytest.RaisesExc(PatroniError, match="no running leader"), flatten_subgroups=True
    ):
        await start_server(
            nursery,
            config,
            database_primary_app_id="chat-db",
            patroni_cluster_url=f"{base}/cluster",
            database_wait_seconds=0.6,
        )


async def test_a_statement_retried_across_a_leader_change_runs_on_the_new_pool(
    database_url: str,
) -> None:
    """A write refused as read-only (25006, a leader being demoted) is retried; when the pool is
    replaced between two tries, the next try takes a connection of the new pool (the old one is
    closing: asking it would end the request in an error that is no outage answer)."""
    read_only = database_url + ("&" if "?" in database_url else "?")
    read_only += "default_transaction_read_only=on"  # asyncpg: a server setting
    async with trio_asyncio.open_loop():
        db = await Database.connect(database_url, max_size=1)
        await db.execute("CREATE SEQUENCE retried_write")
        await db.close()
        db = await Database.connect(read_only, max_size=2)
        try:
            async with trio.open_nursery() as nursery:
                result: list[int] = []

                async def write() -> None:
                    result.append(await db.fetchval("SELECT nextval('retried_write')"))

                nursery.start_soon(write)
                with trio.fail_after(5):
                    await db.outage.wait()  # the first try was refused (25006)
                await db.reconnect(database_url, max_size=2)  # the new leader
            assert result == [1]
        finally:
            await db.close()


def test_errors_of_a_connection_the_server_ended_before_the_query_count_as_not_executed() -> None:
    """Seen in switchovers: the old leader ends an idle connection just after it was acquired;
    asyncpg hands it back to the pool and refuses the query without sending it."""
    released = asyncpg.InterfaceError(
        "cannot call Connection.fetchrow(): connection has been released back to the pool"
    )
    assert _kind(released) == "retry"
    assert _kind(asyncpg.InterfaceError("pool is closing")) == "retry"
    assert _kind(asyncpg.InterfaceError("connection is closed")) == "lost"
    assert _kind(asyncpg.InterfaceError("a connection is already acquired")) is None  # misuse


async def test_rest_unreachable_later_keeps_the_pool_and_logs_once_per_change(
    nursery: trio.Nursery, config, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:  # noqa: ANN001
    parts = urlsplit(database_url)
    available = True

    async def patroni(request: FakeRequest) -> Reply:
        if not available:
            return Reply(503, b"down")
        return Reply.json({"members": [_member("pg-1", "127.0.0.1", "leader")]})

    base = await nursery.start(serve_handler, patroni)
    server = await start_server(
        nursery,
        config,
        database_url=None,
        database_user=parts.username or "postgres",
        database_password=parts.password or "",
        database_name=parts.path.lstrip("/"),
        patroni_cluster_url=f"{base}/cluster,http://127.0.0.1:1/cluster",  # the second: refused
        database_refresh_interval=3600.0,
    )
    follower = server.services.patroni
    db = server.services.db
    pool = db._pool

    def logged(text: str) -> int:
        return sum(
            1 for r in caplog.records if r.name == "privchat.store.patroni" and text in r.message
        )

    available = False
    for _ in range(5):  # every endpoint fails, five times over: one line, the same pool
        await follower.refresh()
    assert logged("keeping the current pool") == 1
    assert db._pool is pool and follower.changes == 0
    assert await db.fetchval("SELECT 4") == 4
    available = True
    for _ in range(3):
        await follower.refresh()
    assert logged("patroni discovery recovered") == 1
    assert db._pool is pool
