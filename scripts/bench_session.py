"""Benchmark: what a session lookup adds to a request (issue 4 acceptance: < 1 ms at p50).

Starts privchat in-process (DEV=true) on a throwaway PostgreSQL database, signs in once with
mock-login, then sends interleaved requests over one keep-alive connection:

  health         GET /health                          no auth, no database
  session only   POST /v1/auth/logout with body {}    session lookup, then a 422 (no more DB)
  configs        GET /v1/configs                      session lookup + one system_configs read

and prints p50/p99 per route plus the overhead over /health, as a table and as JSON. It also
times the lookup itself (`sessions.find` on the server's own pool, in the same process), which
is the part of the overhead that does not depend on HTTP noise.

    python scripts/bench_session.py [--requests 3000] [--dsn postgresql://postgres@127.0.0.1/postgres]

The database server comes from --dsn, else PRIVCHAT_TEST_DSN, else 127.0.0.1:5432 as postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx2
import trio

from privchat.auth import sessions
from privchat.config import load_config
from privchat.runtime import Running, serve

ROUTES = {
    "health": ("GET", "/health", None),
    "session only": ("POST", "/v1/auth/logout", b"{}"),
    "configs": ("GET", "/v1/configs", None),
}


def _database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return f"{base}?{query}" if query else base


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _measure(running: Running, requests: int, warmup: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in ROUTES}
    timings["lookup (in-process)"] = []
    async with httpx2.AsyncClient(base_url=running.url, timeout=30) as client:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        login = await client.post("/v1/auth/mock-login", json={"email": email})
        token = login.json()["token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        expected = {"health": 200, "session only": 422, "configs": 200}
        for i in range(warmup + requests):
            for name, (method, path, body) in ROUTES.items():
                started = time.perf_counter()
                response = await client.request(method, path, headers=headers, content=body)
                elapsed = time.perf_counter() - started
                assert response.status_code == expected[name], (name, response.status_code)
                if i >= warmup:
                    timings[name].append(elapsed * 1000)
            started = time.perf_counter()
            found = await sessions.find(running.services.db, token)
            elapsed = time.perf_counter() - started
            assert found is not None
            if i >= warmup:
                timings["lookup (in-process)"].append(elapsed * 1000)
    return timings


async def _run(database_url: str, requests: int, warmup: int) -> dict[str, list[float]]:
    config = load_config(
        {},
        database_url=database_url,
        server_host="127.0.0.1",
        server_port=0,
        dev=True,
        frontend_dir=Path(tempfile.gettempdir()) / "privchat-bench-no-frontend",
        openai_base_url="http://127.0.0.1:9/v1",
    )
    async with trio.open_nursery() as nursery:
        running = await nursery.start(
            lambda task_status: serve(config, handle_signals=False, task_status=task_status)
        )
        try:
            return await _measure(running, requests, warmup)
        finally:
            nursery.cancel_scope.cancel()


def report(timings: dict[str, list[float]]) -> dict[str, object]:
    rows = {
        name: {
            "p50_ms": round(statistics.median(samples), 3),
            "p99_ms": round(_percentile(samples, 0.99), 3),
            "n": len(samples),
        }
        for name, samples in timings.items()
    }
    base = rows["health"]["p50_ms"]
    out: dict[str, object] = {
        "routes": rows,
        "session_overhead_p50_ms": round(rows["session only"]["p50_ms"] - base, 3),
        "configs_overhead_p50_ms": round(rows["configs"]["p50_ms"] - base, 3),
        "lookup_in_process_p50_ms": rows["lookup (in-process)"]["p50_ms"],
        "target_ms": 1.0,
    }
    out["target_met"] = out["session_overhead_p50_ms"] < 1.0  # type: ignore[operator]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per route")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--dsn",
        default=os.environ.get(
            "PRIVCHAT_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    name = f"privchat_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(args.dsn, f'CREATE DATABASE "{name}"'))
    try:
        timings = trio.run(_run, _database(args.dsn, name), args.requests, args.warmup)
    finally:
        asyncio.run(_admin(args.dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    result = report(timings)
    print(f"{'route':<20} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
    for route, row in result["routes"].items():  # type: ignore[union-attr]
        print(f"{route:<20} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['n']:>6}")
    print(
        f"session lookup overhead at p50: {result['session_overhead_p50_ms']:.3f} ms (target < 1 ms)"
    )
    print(f"configs (lookup + read) overhead at p50: {result['configs_overhead_p50_ms']:.3f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
