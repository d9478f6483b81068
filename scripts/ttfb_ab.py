"""Interleaved A/B of time to first SSE event: one fake cloud, one privchat per checkout.

    python scripts/ttfb_ab.py 400 new=. old=/tmp/base8145670 [--out FILE]

Each round sends one streamed `/v1/responses` to every checkout, in a shuffled order, one
request at a time, so a noisy machine slows every checkout alike (the latency phases of
`bench_proxy.py` measure one target after the other, which a shared machine skews by about a
millisecond). A checkout is `name=DIR[:PYTHON]`; PYTHON defaults to DIR/.venv/bin/python.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx2
import trio

sys.path.insert(0, str(Path(__file__).parent))
import bench_proxy as bp  # noqa: E402
from benchkit import free_port, percentile, stop, throwaway_database  # noqa: E402

ROOT = Path(__file__).parent.parent
DELTAS = {"x-fake-deltas": "8"}


def _spec(text: str) -> tuple[str, Path, str]:
    name, _, rest = text.partition("=")
    directory, _, python = rest.partition(":")
    path = Path(directory).resolve()
    return name, path, python or str(path / ".venv/bin/python")


async def _measure(fake_port: int, urls: dict[str, str], rounds: int) -> dict[str, list[float]]:
    await bp.wait_http(f"http://127.0.0.1:{fake_port}/_fake/config")
    targets = {}
    for name, url in urls.items():
        await bp.wait_http(f"{url}/health")
        tokens = await bp.make_users(url, 150)
        await bp.warm(url, tokens)
        targets[name] = bp.Target(name, f"{url}/v1/responses", bp.Users(tokens))
    results: dict[str, list[float]] = {name: [] for name in targets}
    async with httpx2.AsyncClient(timeout=30) as client:
        for target in targets.values():
            for _ in range(20):
                await bp.one_stream(client, target, DELTAS)
        names = list(targets)
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                ttfb, _ = await bp.one_stream(client, targets[name], DELTAS)
                results[name].append(ttfb)
                await trio.sleep(0.005)  # pacing between requests, not synchronisation
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", type=int)
    parser.add_argument("checkouts", nargs="+", help="name=DIR[:PYTHON]")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        fake_port = free_port()
        fake = [sys.executable, "-m", "privchat.devtools.fake_cloud", "--port", str(fake_port)]
        bp._start(procs, [*fake, "--api-key", bp.KEY], ROOT, dict(os.environ))
        urls = {}
        for name, directory, python in map(_spec, args.checkouts):
            dsn = stack.enter_context(throwaway_database(bp.ADMIN_DSN))
            urls[name], _ = bp._privchat(procs, directory, python, dsn, fake_port)
        try:
            results = trio.run(_measure, fake_port, urls, args.rounds)
        finally:
            stop(procs)
    out = {}
    for name, values in results.items():
        p50, p90, p99 = (round(percentile(values, q) * 1000, 3) for q in (0.5, 0.9, 0.99))
        out[name] = {"n": len(values), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99}
        print(f"{name:14s} n={len(values)} p50={p50:.3f} p90={p90:.3f} p99={p99:.3f} ms")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
