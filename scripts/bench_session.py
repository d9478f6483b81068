"""Benchmark: what a session lookup adds to a request (issue 4 acceptance: < 1 ms at p50).

Starts privchat as its own process (`python -m privchat serve`, DEV=true) on a throwaway
PostgreSQL database, so the client's work does not share a core with the server's. It signs in
once with mock-login, then sends interleaved requests over one keep-alive connection:

  health         GET /health                          no auth, no database
  no lookup      POST /v1/auth/logout, malformed token  rejected (401) before the lookup
  session only   POST /v1/auth/logout with body {}    session lookup, then a 422 (no more DB)
  configs        GET /v1/configs                      session lookup + one system_configs read

and prints p50/p99 per route plus the overhead over /health, as a table and as JSON. It also
times the lookup itself (`sessions.find` through privchat's `Database` pool, in the benchmark
process), the part of the overhead that does not depend on HTTP noise.

    python scripts/bench_session.py [--requests 3000] [--dsn postgresql://postgres@127.0.0.1/postgres]

The database server comes from --dsn, else PRIVCHAT_TEST_DSN, else 127.0.0.1:5432 as postgres.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import httpx2
import trio
import trio_asyncio
from benchkit import free_port, percentile, throwaway_database  # scripts/benchkit.py

from privchat.auth import sessions
from privchat.store import Database

ROUTES = {
    "health": ("GET", "/health", None),
    "no lookup": ("POST", "/v1/auth/logout", b"{}"),
    "session only": ("POST", "/v1/auth/logout", b"{}"),
    "configs": ("GET", "/v1/configs", None),
}


async def _measure(
    url: str, db: Database, requests: int, warmup: int, clients: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in ROUTES}
    timings["lookup (in-process)"] = []
    per_client = max(1, requests // clients)
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(_client, url, db, per_client, warmup, timings)
    return timings


async def _client(
    url: str, db: Database, requests: int, warmup: int, timings: dict[str, list[float]]
) -> None:
    async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        login = await client.post("/v1/auth/mock-login", json={"email": email})
        token = login.json()["token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        # The same request with a token that fails the format check: everything but the lookup.
        malformed = {**headers, "Authorization": "Bearer sess_malformed"}
        expected = {"health": 200, "no lookup": 401, "session only": 422, "configs": 200}
        for i in range(warmup + requests):
            for name, (method, path, body) in ROUTES.items():
                sent = malformed if name == "no lookup" else headers
                started = time.perf_counter()
                response = await client.request(method, path, headers=sent, content=body)
                elapsed = time.perf_counter() - started
                assert response.status_code == expected[name], (name, response.status_code)
                if i >= warmup:
                    timings[name].append(elapsed * 1000)
            started = time.perf_counter()
            found = await sessions.find(db, token)
            elapsed = time.perf_counter() - started
            assert found is not None
            if i >= warmup:
                timings["lookup (in-process)"].append(elapsed * 1000)


async def _run(
    database_url: str, requests: int, warmup: int, clients: int
) -> dict[str, list[float]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": str(port),
        "DEV": "true",
        "LOG_LEVEL": "error",
        "FRONTEND_DIR": tempfile.gettempdir() + "/privchat-bench-no-frontend",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "privchat", "serve"], env=env, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(base_url=url) as probe:
            with trio.fail_after(60):
                while True:
                    try:
                        if (await probe.get("/health")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        await trio.sleep(0.1)
        async with trio_asyncio.open_loop():
            db = await Database.connect(database_url, max_size=2)
            try:
                return await _measure(url, db, requests, warmup, clients)
            finally:
                await db.close()
    finally:
        server.terminate()
        server.wait(30)


def report(timings: dict[str, list[float]]) -> dict[str, object]:
    rows = {
        name: {
            "p50_ms": round(statistics.median(samples), 3),
            "p99_ms": round(percentile(samples, 0.99), 3),
            "n": len(samples),
        }
        for name, samples in timings.items()
    }
    base = rows["health"]["p50_ms"]
    out: dict[str, object] = {
        "routes": rows,
        "session_overhead_p50_ms": round(rows["session only"]["p50_ms"] - base, 3),
        "lookup_vs_same_route_p50_ms": round(
            rows["session only"]["p50_ms"] - rows["no lookup"]["p50_ms"], 3
        ),
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
        "--clients", type=int, default=1, help="concurrent keep-alive connections (load level)"
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get(
            "PRIVCHAT_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with throwaway_database(args.dsn) as dsn:
        timings = trio.run(_run, dsn, args.requests, args.warmup, args.clients)
    result = report(timings)
    print(f"{'route':<20} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
    for route, row in result["routes"].items():  # type: ignore[union-attr]
        print(f"{route:<20} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['n']:>6}")
    print(
        f"session lookup overhead at p50: {result['session_overhead_p50_ms']:.3f} ms (target < 1 ms)"
    )
    print(
        "session lookup vs the same request rejected before the lookup, at p50: "
        f"{result['lookup_vs_same_route_p50_ms']:.3f} ms"
    )
    print(f"configs (lookup + read) overhead at p50: {result['configs_overhead_p50_ms']:.3f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
