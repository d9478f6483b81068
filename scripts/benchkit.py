"""What the benchmarks share: a throwaway database, a free port, percentiles, privchat and the
fake cloud as processes, an old commit's tree."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx2
import psutil
import trio


def with_database(dsn: str, name: str) -> str:
    """`dsn` pointed at the database `name` on the same server."""
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return f"{base}?{query}" if query else base


def _admin(dsn: str, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def throwaway_database(admin_dsn: str) -> Iterator[str]:
    """A new, empty database on the server of `admin_dsn`, dropped afterwards; yields its DSN."""
    name = f"privchat_bench_{uuid.uuid4().hex[:10]}"
    _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_dsn, name)
    finally:
        _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def privchat_with_fake(
    dsn: str, *, source: Path = ROOT, key: str = "sk-bench", env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """The fake NEAR AI Cloud and `privchat serve` (from the checkout `source`) as processes of
    their own on free loopback ports; yields (privchat URL, fake URL, privchat process)."""
    fake_port, port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    base = dict(os.environ)
    try:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "privchat.devtools.fake_cloud", "--port", str(fake_port)]
                + ["--api-key", key],
                cwd=ROOT,
                env=base,
                stdout=subprocess.DEVNULL,
            )
        )
        served = {
            **base,
            "PYTHONPATH": str(source),  # `source`'s privchat, not the installed one
            "DATABASE_URL": dsn,
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": str(port),
            "DEV": "true",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
            "OPENAI_API_KEY": key,
            "LOG_LEVEL": "warn",
            "DATABASE_MAX_CONNECTIONS": "10",
            **(env or {}),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "privchat", "serve"],
                cwd=source,
                env=served,
                stdout=subprocess.DEVNULL,
            )
        )
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{fake_port}", procs[-1]
    finally:
        stop(procs)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate `procs`, then kill those still running after 10 s."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


async def wait_http(url: str) -> None:
    """Until `url` answers at all (60 s at most)."""
    async with httpx2.AsyncClient(timeout=2) as client:
        with trio.fail_after(60):
            while True:
                try:
                    await client.get(url)
                    return
                except httpx2.TransportError:
                    await trio.sleep(0.1)


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


@contextmanager
def checkout(commit: str) -> Iterator[Path]:
    """The tree of `commit` of this repository in a temporary directory (no worktree entry)."""
    with tempfile.TemporaryDirectory(prefix="privchat-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)
