"""`/metrics` after 20,000 distinct unknown paths (issue 14, finding 2), before and after the fix.

Starts the fake cloud and `privchat serve` as processes, from a temporary tree of the baseline
commit (default 8145670, labels from the raw path) and from this checkout, each on its own
throwaway database; sends `--paths` distinct unknown paths (a third with made-up methods) with
32 clients; then reports the number of series, the scrape's size, the scrape time (median and
max of 5) and, as the same-run baseline, the time of `GET /health`.

    python scripts/bench_metrics.py [--baseline 8145670] [--paths 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import trio
from benchkit import ROOT, checkout, privchat_with_fake, throwaway_database, wait_http

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PARALLEL = 32


async def timed(client: httpx2.AsyncClient, path: str) -> tuple[float, httpx2.Response]:
    started = time.perf_counter()
    r = await client.get(path)
    return (time.perf_counter() - started) * 1000, r


def measure(source: Path, paths: int) -> dict[str, Any]:
    with throwaway_database(ADMIN_DSN) as dsn, privchat_with_fake(dsn, source=source) as running:
        url = running[0]

        async def go() -> dict[str, Any]:
            await wait_http(f"{url}/health")

            async def worker(start: int) -> None:
                async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
                    for i in range(start, paths, PARALLEL):
                        method = ("GET", "POST", f"X{i}")[i % 3]
                        await client.request(method, f"/v1/nope-{i}/{uuid.uuid4().hex}")

            async with trio.open_nursery() as nursery:
                for start in range(PARALLEL):
                    nursery.start_soon(worker, start)
            async with httpx2.AsyncClient(base_url=url, timeout=120) as client:
                scrapes, health = [], []
                for _ in range(5):
                    ms, r = await timed(client, "/metrics")
                    scrapes.append(ms)
                    health.append((await timed(client, "/health"))[0])
                text = r.text
            series = [line for line in text.splitlines() if line and not line.startswith("#")]
            return {
                "series": len(series),
                "scrape_bytes": len(r.content),
                "scrape_ms_median": round(statistics.median(scrapes), 2),
                "scrape_ms_max": round(max(scrapes), 2),
                "health_ms_median": round(statistics.median(health), 2),
            }

        return trio.run(go)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="8145670")
    parser.add_argument("--paths", type=int, default=20_000)
    args = parser.parse_args()
    with checkout(args.baseline) as old:
        before = measure(old, args.paths)
    after = measure(ROOT, args.paths)
    print(f"after {args.paths:,} distinct unknown paths:")
    print(f"| | {args.baseline} | now |")
    print("| --- | ---: | ---: |")
    for key in before:
        print(f"| {key} | {before[key]:,} | {after[key]:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
