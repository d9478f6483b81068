"""Shared fixtures: a fresh PostgreSQL database per test run, and the real server on port 0.

The database is created on the PostgreSQL at 127.0.0.1:5432 when one answers (override with
PRIVCHAT_TEST_DSN), else on an embedded one from `pgserver`. It is migrated once and dropped at
the end of the run. All log output of the run goes to one JSON file that the privacy test scans.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest
import trio
import trio_asyncio

from privchat.config import Config, load_config
from privchat.observability import JsonFormatter
from privchat.runtime import Running, serve
from privchat.store import Database
from privchat.store.migrate import migrate

from .dbtools import admin, with_database

ADMIN_DOMAIN = "admin.org"
LOG_FILE = Path(tempfile.gettempdir()) / f"privchat-test-{os.getpid()}.log"


def _local_postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _server_dsn() -> str:
    if os.environ.get("PRIVCHAT_TEST_DSN"):
        return os.environ["PRIVCHAT_TEST_DSN"]
    if _local_postgres_up():
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    import pgserver

    data = Path(tempfile.gettempdir()) / "privchat-test-pg"
    return str(pgserver.get_server(data, cleanup_mode="stop").get_uri())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    admin_dsn = _server_dsn()
    name = f"privchat_test_{uuid.uuid4().hex[:12]}"

    asyncio.run(admin(admin_dsn, f'CREATE DATABASE "{name}"'))
    url = with_database(admin_dsn, name)

    async def run_migrations() -> None:
        async with trio_asyncio.open_loop():
            db = await Database.connect(url, max_size=2)
            try:
                await migrate(db, Path(__file__).parent.parent / "db" / "migrations")
            finally:
                await db.close()

    trio.run(run_migrations)
    yield url
    asyncio.run(admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", autouse=True)
def _log_to_file() -> Iterator[Path]:
    """Every log record of the run, as JSON lines, in one file (see test_privacy.py)."""
    handler = logging.FileHandler(LOG_FILE, mode="w")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # As in production (observability.setup_logging): HTTP client libraries log request URLs.
    for noisy in ("hpack", "httpx2", "httpcore", "httpcore2", "asyncio", "trio_asyncio", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    yield LOG_FILE
    root.removeHandler(handler)
    handler.close()


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Config:
    """A test configuration; tests adjust it with `dataclasses.replace` before starting a server."""
    return load_config(
        {},
        database_url=database_url,
        server_host="127.0.0.1",
        server_port=0,
        dev=True,
        auth_admin_domains=(ADMIN_DOMAIN,),
        frontend_dir=tmp_path / "no-frontend",
        shutdown_grace_seconds=5.0,
        openai_base_url="http://127.0.0.1:9/v1",
        openai_api_key="sk-test",
        upstream_connect_timeout=2.0,
    )


async def start_server(nursery: trio.Nursery, config: Config, **changes: object) -> Running:
    """Start the real privchat in-process on port 0; it stops when the test's nursery ends."""
    cfg = replace(config, **changes) if changes else config
    return await nursery.start(
        lambda task_status: serve(cfg, handle_signals=False, task_status=task_status)
    )


@pytest.fixture
async def server(nursery: trio.Nursery, config: Config) -> Running:
    return await start_server(nursery, config)


@pytest.fixture
async def client(server: Running) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c


async def login(
    client: httpx2.AsyncClient, email: str | None = None, name: str = "Test User"
) -> str:
    """Mock-login (DEV=true) and return the session token."""
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post("/v1/auth/mock-login", json={"email": email, "name": name})
    assert response.status_code == 200, response.text
    return response.json()["token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
