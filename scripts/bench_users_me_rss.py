"""Resident memory of privchat over 6,000 sequential `GET /v1/users/me`, before and after the fix
of issue 14 (cancelled asyncio timers kept alive), measured in the same run.

Starts the fake cloud and `privchat serve` as processes, once from a temporary tree of the
baseline commit (default 8145670, before the fix) and once from this checkout, each on its own
throwaway database, and prints the RSS after start-up and every 1,000 requests.

    python scripts/bench_users_me_rss.py [--baseline 8145670] [--requests 6000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx2
import trio
from benchkit import (  # scripts/benchkit.py
    ROOT,
    checkout,
    privchat_with_fake,
    rss_mb,
    throwaway_database,
    wait_http,
)

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def measure(source: Path, requests: int) -> list[tuple[int, float]]:
    with throwaway_database(ADMIN_DSN) as dsn, privchat_with_fake(dsn, source=source) as running:
        url, _fake, proc = running

        async def go() -> list[tuple[int, float]]:
            await wait_http(f"{url}/health")
            points = [(0, rss_mb(proc.pid))]
            async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
                r = await client.post(
                    "/v1/auth/mock-login", json={"email": "rss@example.com", "name": "R"}
                )
                headers = {"authorization": f"Bearer {r.json()['token']}"}
                for i in range(1, requests + 1):
                    r = await client.get("/v1/users/me", headers=headers)
                    assert r.status_code == 200, r.status_code
                    if i % 1000 == 0:
                        points.append((i, rss_mb(proc.pid)))
            return points

        return trio.run(go)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="8145670")
    parser.add_argument("--requests", type=int, default=6000)
    args = parser.parse_args()
    with checkout(args.baseline) as old:
        before = measure(old, args.requests)
    after = measure(ROOT, args.requests)
    print(f"| requests | RSS MB at {args.baseline} | RSS MB now |")
    print("| ---: | ---: | ---: |")
    for (n, b), (_, a) in zip(before, after, strict=True):
        print(f"| {n:,} | {b:.1f} | {a:.1f} |")
    growth_b, growth_a = before[-1][1] - before[1][1], after[-1][1] - after[1][1]
    print(
        f"\ngrowth from 1,000 to {args.requests:,}: {growth_b:.1f} MB before, {growth_a:.1f} MB now"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
