"""Benchmark of privchat's streaming proxy against the fake NEAR AI Cloud, on loopback.

Starts the fake (`python -m privchat.devtools.fake_cloud`) and privchat (`python -m privchat serve`)
as separate processes, on a throwaway PostgreSQL database (created on 127.0.0.1:5432, dropped at
the end), makes users with mock-login (DEV=true), and measures, against the fake directly in the
same run (and, for time to first byte and throughput, against `scripts/floor_relay.py` too: the
least a relay on the same stack does, so the cost of the hop itself is known apart from
privchat's):

- time to first byte (first SSE event) p50/p99 at 1 and 16 paced clients and 64 back to back;
- per-event relay delay (arrival of event i after event 0, via privchat minus direct);
- streamed responses per second (64 back to back), as a ratio of direct;
- privchat's RSS growth with 1,000 concurrent open streams (and per stream);
- client disconnect to upstream disconnect p99 (the fake's clock is calibrated by direct
  disconnects; the estimate is biased low by the direct disconnect's own latency, ~0.1 ms).

Each paced client is its own user (one request per 1.07 s, under the per-user rate limit of
/v1/responses); the single paced client and the 64 back-to-back clients draw from pools of users
so that no user sends more than one request per 1.05 s. Every user has made one request before
the measurements, as a signed-in user has (their session is warm in privchat's session cache).
With `--capacity`, the capacity phase (`scripts/capacity.py`) climbs N = 50, 100, 200, 300, 400,
600, 800, ... concurrent long token streams through privchat, the ladder of floors
(`scripts/ladder.py`: TCP splice, h11, Hypercorn + httpx2 ASGI; `floor_relay.py`: Quart-Trio)
and directly against their upstream: a second set of these processes whose upstream is
`scripts/pacer.py` (the fake's events replayed on schedule at a few µs each; the fake itself
cannot send 15,000 events/s on this machine). With `--baseline DIR`, a second privchat from
another checkout (its own venv in DIR/.venv, its own database) runs beside this one in every
phase, so changes are measured against it in the same run.
Prints tables and writes JSON (`--out`). `BENCH_DATABASE_MAX_CONNECTIONS` (default 10) sizes the
privchat processes' database pools.

    python scripts/bench_proxy.py [--out bench_proxy.json] [--quick] [--capacity]
        [--rungs 50,100,...] [--baseline DIR] [--skip-latency]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import capacity  # scripts/capacity.py
import httpx2
import psutil
import trio
from benchkit import free_port, percentile, stop, throwaway_database  # scripts/benchkit.py

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
KEY = "sk-bench"
BODY = json.dumps(
    {
        "model": "privchat-dev/echo",
        "input": [{"role": "user", "content": "Say hello"}],
        "stream": True,
    }
).encode()
JSON = {"content-type": "application/json"}
RATE_GAP = 1.05


def pct(values: list[float], p: float) -> float:
    return percentile(values, p / 100)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Users:
    """Session tokens; a token is free again RATE_GAP seconds after its request ended (the
    server's window starts when it accepts the request, which can lag behind under load)."""

    def __init__(self, tokens: list[str]) -> None:
        self.queue: deque[tuple[float, str]] = deque((0.0, t) for t in tokens)

    async def take(self) -> str:
        while True:
            if not self.queue:
                await trio.sleep(0.001)
                continue
            ready_at, token = self.queue.popleft()
            wait = ready_at - time.perf_counter()
            if wait <= 0:
                return token
            self.queue.appendleft((ready_at, token))
            await trio.sleep(wait)

    def done(self, token: str) -> None:
        self.queue.append((time.perf_counter() + RATE_GAP, token))


class Target:
    def __init__(self, name: str, url: str, users: Users | None) -> None:
        self.name = name
        self.url = url  # full URL of the responses endpoint
        self.users = users

    def split(self, tokens: list[str], pools: int) -> list[Target]:
        """One target per client, each drawing from its own share of `tokens`."""
        if self.users is None:
            return [self] * pools
        return [Target(self.name, self.url, Users(tokens[i::pools])) for i in range(pools)]

    async def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        token = await self.users.take() if self.users else KEY
        return {**JSON, "authorization": f"Bearer {token}", **(extra or {})}

    def done(self, headers: dict[str, str]) -> None:
        if self.users:
            self.users.done(headers["authorization"].removeprefix("Bearer "))


async def one_stream(
    client: httpx2.AsyncClient, target: Target, knobs: dict[str, str]
) -> tuple[float, list[float]]:
    """(TTFB, arrival time of each chunk relative to the request start)."""
    headers = await target.headers(knobs)
    start = time.perf_counter()
    arrivals: list[float] = []
    try:
        async with client.stream("POST", target.url, content=BODY, headers=headers) as r:
            if r.status_code != 200:
                raise RuntimeError(f"{target.name}: HTTP {r.status_code}")
            async for _ in r.aiter_raw():
                arrivals.append(time.perf_counter() - start)
    finally:
        target.done(headers)
    return arrivals[0], arrivals


async def paced(
    client: httpx2.AsyncClient, targets: list[Target], per_client: int, period: float
) -> list[float]:
    ttfbs: list[float] = []
    clients = len(targets)

    async def worker(offset: float, target: Target) -> None:
        await trio.sleep(offset)
        next_at = time.perf_counter()
        for _ in range(per_client):
            ttfb, _ = await one_stream(client, target, {"x-fake-deltas": "8"})
            ttfbs.append(ttfb)
            next_at += period
            await trio.sleep(max(0.0, next_at - time.perf_counter()))

    async with trio.open_nursery() as nursery:
        for i, target in enumerate(targets):
            nursery.start_soon(worker, period * i / clients, target)
    return ttfbs


async def back_to_back(
    client: httpx2.AsyncClient, target: Target, clients: int, seconds: float
) -> tuple[list[float], float]:
    ttfbs: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            ttfb, _ = await one_stream(client, target, {"x-fake-deltas": "8"})
            ttfbs.append(ttfb)
            done += 1

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(worker)
    return ttfbs, done / (time.perf_counter() - started)


async def event_delays(client: httpx2.AsyncClient, target: Target, runs: int) -> list[list[float]]:
    out = []
    for _ in range(runs):
        _, arrivals = await one_stream(
            client, target, {"x-fake-deltas": "20", "x-fake-delay-ms": "20"}
        )
        out.append([a - arrivals[0] for a in arrivals])
    return out


async def fake_streams(client: httpx2.AsyncClient, fake: str) -> list[dict[str, Any]]:
    r = await client.get(f"{fake}/_fake/streams")
    return r.json()["streams"]


async def cancel_latencies(
    client: httpx2.AsyncClient, target: Target, fake: str, runs: int
) -> list[float]:
    """Close the client connection mid-stream; return the fake's disconnect time per run
    (fake clock) paired with our close time (perf_counter): (fake_time - close_time)."""
    diffs = []
    for _ in range(runs):
        await client.post(f"{fake}/_fake/reset")
        headers = await target.headers({"x-fake-deltas": "400", "x-fake-delay-ms": "20"})
        async with httpx2.AsyncClient(timeout=30) as own:  # its own connection, closed below
            async with own.stream("POST", target.url, content=BODY, headers=headers) as r:
                async for _ in r.aiter_raw():
                    break
                closed_at = time.perf_counter()
        target.done(headers)
        for _ in range(200):
            streams = await fake_streams(client, fake)
            if streams and streams[0]["disconnect_time"] is not None:
                break
            await trio.sleep(0.01)
        diffs.append(streams[0]["disconnect_time"] - closed_at)
    return diffs


async def open_many(target: Target, count: int, pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    before = proc.memory_info().rss
    heads = 0
    all_open = trio.Event()
    release = trio.Event()
    limits = httpx2.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx2.AsyncClient(timeout=120, limits=limits) as client:
        opening = trio.Semaphore(50)  # the listen backlog is ~100: open at a bounded rate

        async def hold() -> None:
            nonlocal heads
            headers = await target.headers({"x-fake-first-delay-ms": "600000"})
            await opening.acquire()
            async with client.stream("POST", target.url, content=BODY, headers=headers) as r:
                opening.release()
                assert r.status_code == 200, r.status_code
                heads += 1
                if heads == count:
                    all_open.set()
                await release.wait()

        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(hold)
            with trio.fail_after(120):
                await all_open.wait()
            await trio.sleep(1.0)
            during = proc.memory_info().rss
            release.set()
            nursery.cancel_scope.cancel()
    return {
        "rss_before_mb": before / 2**20,
        "rss_open_mb": during / 2**20,
        "growth_mb": (during - before) / 2**20,
        "per_stream_kb": (during - before) / count / 1024,
    }


async def wait_http(url: str) -> None:
    async with httpx2.AsyncClient(timeout=2) as client:
        with trio.fail_after(60):
            while True:
                try:
                    await client.get(url)
                    return
                except httpx2.TransportError:
                    await trio.sleep(0.1)


async def make_users(base: str, count: int) -> list[str]:
    tokens: list[str] = []
    limiter = trio.CapacityLimiter(16)
    async with httpx2.AsyncClient(base_url=base, timeout=60) as client:

        async def one(i: int) -> None:
            async with limiter:
                r = await client.post(
                    "/v1/auth/mock-login",
                    json={"email": f"bench-{i}-{uuid.uuid4().hex[:6]}@example.com", "name": "B"},
                )
                tokens.append(r.json()["token"])

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
    return tokens


async def warm(base: str, tokens: list[str]) -> None:
    """One authenticated request per user, as a signed-in user has made."""
    limiter = trio.CapacityLimiter(16)
    async with httpx2.AsyncClient(base_url=base, timeout=60) as client:

        async def one(token: str) -> None:
            async with limiter:
                r = await client.get("/v1/users/me", headers={"authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.status_code

        async with trio.open_nursery() as nursery:
            for token in tokens:
                nursery.start_soon(one, token)


def latency(d: list[float], f: list[float], v: list[float]) -> dict[str, Any]:
    """TTFB percentiles direct / floor / privchat, and the overheads over direct."""
    out: dict[str, Any] = {}
    for name, values in (("direct", d), ("floor", f), ("privchat", v)):
        out[f"{name}_ms"] = {"p50": ms(pct(values, 50)), "p99": ms(pct(values, 99))}
    for name, values in (("floor", f), ("privchat", v)):
        key = "overhead_ms" if name == "privchat" else "floor_overhead_ms"
        out[key] = {p: ms(pct(values, q) - pct(d, q)) for p, q in (("p50", 50), ("p99", 99))}
    out["samples"] = len(v)
    return out


async def cache_lookups(client: httpx2.AsyncClient, base: str) -> dict[str, float]:
    """privchat's session cache counters, from /metrics."""
    text = (await client.get(f"{base}/metrics")).text
    out = {"hit": 0.0, "miss": 0.0}
    for result in out:
        prefix = f'chat_api_session_cache_lookups_total{{result="{result}"}} '
        for line in text.splitlines():
            if line.startswith(prefix):
                out[result] = float(line[len(prefix) :])
    return out


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def run(
    args: argparse.Namespace,
    fake_url: str,
    floor_url: str,
    privchat_url: str,
    pid: int,
    floor_pid: int,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    n_open = 1000 if not args.quick else 100
    n_b2b = 1000 if not args.quick else 300  # > 1.05 s x the direct rate: users never throttle
    tokens = await make_users(privchat_url, 12 + 16 + n_b2b + n_open)
    await warm(privchat_url, tokens)
    paced_1, tokens = tokens[:12], tokens[12:]
    paced_16, tokens = tokens[:16], tokens[16:]
    b2b, open_tokens = tokens[:n_b2b], tokens[n_b2b:]
    direct = Target("direct", f"{fake_url}/v1/responses", None)
    floor = Target("floor", f"{floor_url}/v1/responses", None)
    via = Target("privchat", f"{privchat_url}/v1/responses", Users([]))
    limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx2.AsyncClient(timeout=60, limits=limits) as client:
        # warm-up
        for t in (direct, floor, *via.split(paced_1, 1)):
            for _ in range(5):
                await one_stream(client, t, {})
        await trio.sleep(RATE_GAP)
        scale = 0.3 if args.quick else 1.0
        for label, users, clients, per_client, period in (
            ("paced_1", paced_1, 1, int(100 * scale), 0.1),
            ("paced_16", paced_16, 16, int(15 * scale), 16 / 15),
        ):
            d = await paced(client, direct.split([], clients), per_client, period)
            f = await paced(client, floor.split([], clients), per_client, period)
            v = await paced(client, via.split(users, clients), per_client, period)
            results[label] = latency(d, f, v)
        seconds = 4 if args.quick else 10
        d, d_rate = await back_to_back(client, direct, 64, seconds)
        cpu = cpu_seconds(floor_pid)
        f, f_rate = await back_to_back(client, floor, 64, seconds)
        floor_cpu = (cpu_seconds(floor_pid) - cpu) / len(f)
        via = via.split(b2b, 1)[0]
        await warm(privchat_url, b2b)  # signed-in users, as before the paced phases
        cpu, before = cpu_seconds(pid), await cache_lookups(client, privchat_url)
        v, v_rate = await back_to_back(client, via, 64, seconds)
        privchat_cpu = (cpu_seconds(pid) - cpu) / len(v)
        after = await cache_lookups(client, privchat_url)
        hits, misses = (after[k] - before[k] for k in ("hit", "miss"))
        results["b2b_64"] = {
            **latency(d, f, v),
            "streams_per_s": {
                "direct": round(d_rate, 1),
                "floor": round(f_rate, 1),
                "privchat": round(v_rate, 1),
                "ratio": round(v_rate / d_rate, 3),
                "floor_ratio": round(f_rate / d_rate, 3),
            },
            "cpu_ms_per_stream": {"floor": ms(floor_cpu), "privchat": ms(privchat_cpu)},
            "session_cache_hit_ratio": round(hits / max(1.0, hits + misses), 3),
        }
        await trio.sleep(RATE_GAP)
        runs = 5 if args.quick else 15
        dd = await event_delays(client, direct, runs)
        vd = await event_delays(client, via, runs)
        per_event = [
            v_run[i] - statistics.median(d_run[i] for d_run in dd if len(d_run) > i)
            for v_run in vd
            for i in range(1, len(v_run))
        ]
        results["per_event_delay_ms"] = {
            "p50": ms(pct(per_event, 50)),
            "p99": ms(pct(per_event, 99)),
            "events": len(per_event),
        }
        # disconnect -> upstream cancel
        offset = min(await cancel_latencies(client, direct, fake_url, 20 if not args.quick else 5))
        via_diffs = await cancel_latencies(client, via, fake_url, 50 if not args.quick else 10)
        lat = [x - offset for x in via_diffs]
        results["cancel_ms"] = {
            "p50": ms(pct(lat, 50)),
            "p99": ms(pct(lat, 99)),
            "max": ms(max(lat)),
            "runs": len(lat),
        }
    count = n_open
    results["open_streams"] = {
        "count": count,
        **{
            k: round(v, 2)
            for k, v in (
                await open_many(
                    Target("privchat", f"{privchat_url}/v1/responses", Users(open_tokens)),
                    count,
                    pid,
                )
            ).items()
        },
    }
    return results


def table(results: dict[str, Any]) -> str:
    rows = [
        ("metric", "direct", "floor", "privchat", "floor overhead", "overhead / value", "target")
    ]
    for label, target in (
        ("paced_1", ""),
        ("paced_16", "p50 <= 2 ms, p99 <= 10 ms"),
        ("b2b_64", "(saturated)"),
    ):
        r = results[label]
        for p in ("p50", "p99"):
            rows.append(
                (
                    f"TTFB {label} {p} (ms)",
                    str(r["direct_ms"][p]),
                    str(r["floor_ms"][p]),
                    str(r["privchat_ms"][p]),
                    str(r["floor_overhead_ms"][p]),
                    str(r["overhead_ms"][p]),
                    target if p == "p50" else "",
                )
            )
    s = results["b2b_64"]["streams_per_s"]
    rows.append(
        (
            "streams/s, 64 back to back",
            str(s["direct"]),
            str(s["floor"]),
            str(s["privchat"]),
            f"ratio {s['floor_ratio']}",
            f"ratio {s['ratio']}",
            "",
        )
    )
    c = results["b2b_64"]["cpu_ms_per_stream"]
    rows.append(
        ("CPU per stream, back to back (ms)", "", str(c["floor"]), str(c["privchat"]), "", "", "")
    )
    e = results["per_event_delay_ms"]
    rows.append(
        ("per-event relay delay p50/p99 (ms)", "", "", "", "", f"{e['p50']} / {e['p99']}", "")
    )
    o = results["open_streams"]
    rows.append(
        (
            f"RSS growth, {o['count']} open streams (MB)",
            "",
            "",
            f"{o['rss_before_mb']} -> {o['rss_open_mb']}",
            "",
            f"{o['growth_mb']} ({o['per_stream_kb']} KB/stream)",
            "<= 150 MB",
        )
    )
    c = results["cancel_ms"]
    rows.append(
        (
            "disconnect -> upstream cancel p50/p99 (ms)",
            "",
            "",
            "",
            "",
            f"{c['p50']} / {c['p99']}",
            "p99 <= 50 ms",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


DEFAULT_RUNGS = "50,100,200,300,400,600,800,1200,1600"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_proxy.json")
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument("--capacity", action="store_true", help="run the capacity phase")
    parser.add_argument("--skip-latency", action="store_true", help="only the capacity phase")
    parser.add_argument("--rungs", default=DEFAULT_RUNGS, help="capacity rungs (streams)")
    parser.add_argument("--events", type=int, default=capacity.EVENTS, help="events per stream")
    parser.add_argument("--baseline", type=Path, help="a checkout (with .venv) to compare with")
    parser.add_argument(
        "--targets", default=",".join(LADDER), help="capacity targets (default: all rungs)"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        dsn = stack.enter_context(throwaway_database(ADMIN_DSN))
        base_dsn = stack.enter_context(throwaway_database(ADMIN_DSN)) if args.baseline else None
        return _bench(args, dsn, base_dsn)


def _start(
    procs: list[subprocess.Popen[bytes]], argv: list[str], cwd: Path, env: dict[str, str]
) -> int:
    procs.append(
        subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    )
    return procs[-1].pid


def _privchat(
    procs: list[subprocess.Popen[bytes]], root: Path, python: str, dsn: str, fake_port: int
) -> tuple[str, int]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": dsn,
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": str(port),
            "DEV": "true",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
            "OPENAI_API_KEY": KEY,
            "LOG_LEVEL": "warn",
            "DATABASE_MAX_CONNECTIONS": os.environ.get("BENCH_DATABASE_MAX_CONNECTIONS", "10"),
        }
    )
    pid = _start(procs, [python, "-m", "privchat", "serve"], root, env)
    return f"http://127.0.0.1:{port}", pid


def _bench(args: argparse.Namespace, dsn: str, base_dsn: str | None) -> int:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        fake_port, floor_port = free_port(), free_port()
        upstream = f"http://127.0.0.1:{fake_port}/v1"
        env = dict(os.environ)
        _start(
            procs,
            [
                sys.executable,
                "-m",
                "privchat.devtools.fake_cloud",
                "--port",
                str(fake_port),
                "--api-key",
                KEY,
            ],
            ROOT,
            env,
        )
        floor_pid = _start(
            procs,
            [
                sys.executable,
                str(ROOT / "scripts" / "floor_relay.py"),
                "--upstream",
                upstream,
                "--port",
                str(floor_port),
            ],
            ROOT,
            env,
        )
        rungs: dict[str, tuple[str, int]] = {}
        pacer_port = free_port()
        pacer = f"http://127.0.0.1:{pacer_port}/v1"  # the capacity phase's upstream
        if args.capacity:
            pacer_pid = _start(
                procs,
                [
                    sys.executable,
                    str(ROOT / "scripts" / "pacer.py"),
                    "--port",
                    str(pacer_port),
                    "--fake",
                    f"http://127.0.0.1:{fake_port}",
                ],
                ROOT,
                env,
            )
            for rung in ("splice", "h11", "asgi", "floor"):
                script = "floor_relay.py" if rung == "floor" else "ladder.py"
                port = free_port()
                pid = _start(
                    procs,
                    [
                        sys.executable,
                        str(ROOT / "scripts" / script),
                        *([] if rung == "floor" else [rung]),
                        "--upstream",
                        pacer,
                        "--port",
                        str(port),
                    ],
                    ROOT,
                    env,
                )
                rungs[rung] = (f"http://127.0.0.1:{port}", pid)
            rungs["privchat"] = _privchat(procs, ROOT, sys.executable, dsn, pacer_port)
            if args.baseline and base_dsn:
                python = str(args.baseline / ".venv" / "bin" / "python")
                rungs["baseline"] = _privchat(procs, args.baseline, python, base_dsn, pacer_port)
        privchat_url, pid = _privchat(procs, ROOT, sys.executable, dsn, fake_port)
        baseline = None
        if args.baseline and base_dsn:
            python = str(args.baseline / ".venv" / "bin" / "python")
            baseline = _privchat(procs, args.baseline, python, base_dsn, fake_port)
        fake_url = f"http://127.0.0.1:{fake_port}"
        floor_url = f"http://127.0.0.1:{floor_port}"

        async def go() -> dict[str, Any]:
            await wait_http(f"{fake_url}/_fake/config")
            await wait_http(f"{floor_url}/")
            await wait_http(f"{privchat_url}/health")
            if baseline:
                await wait_http(f"{baseline[0]}/health")
            for name, (url, _) in rungs.items():
                if name in ("privchat", "baseline"):
                    await wait_http(f"{url}/health")
                else:
                    await wait_port(url)
            if args.capacity:
                await wait_port(pacer.removesuffix("/v1"))
            results: dict[str, Any] = {}
            if not args.skip_latency:
                results = await run(args, fake_url, floor_url, privchat_url, pid, floor_pid)
                if baseline:
                    results["baseline"] = await run(
                        args, fake_url, floor_url, baseline[0], baseline[1], floor_pid
                    )
            if args.capacity:
                results["capacity"] = await capacity_phase(args, pacer, pacer_pid, rungs)
            return results

        results = trio.run(go)
        results["machine"] = {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "loadavg_at_end": os.getloadavg(),
        }
        if not args.skip_latency:
            print(table(results))
            if baseline:
                print("\nbaseline (--baseline checkout), same run:")
                print(table({**results["baseline"]}))
        if args.capacity:
            print()
            print(capacity.table(results["capacity"], LADDER))
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.out}")
        return 0
    finally:
        stop(procs)


LADDER = ["splice", "h11", "asgi", "floor", "privchat", "baseline"]


async def wait_port(url: str) -> None:
    parts = url.removeprefix("http://").split(":")
    with trio.fail_after(60):
        while True:
            try:
                stream = await trio.open_tcp_stream(parts[0], int(parts[1]))
                await stream.aclose()
                return
            except OSError:
                await trio.sleep(0.1)


async def capacity_phase(
    args: argparse.Namespace,
    pacer: str,
    pacer_pid: int,
    rungs: dict[str, tuple[str, int]],
) -> dict[str, Any]:
    """The capacity phase, every relay in `rungs` in front of the pacer (`scripts/pacer.py`)."""
    steps = [int(n) for n in args.rungs.split(",")]
    wanted = args.targets.split(",")
    relays = []
    for name in LADDER:
        if name not in rungs or name not in wanted:
            continue
        url, pid = rungs[name]
        tokens: list[str] = []
        if name in ("privchat", "baseline"):
            tokens = await make_users(url, max(steps))
            await warm(url, tokens)
        relays.append(capacity.Relay(name, f"{url}/v1/responses", pid, tokens))

    return await capacity.capacity(relays, f"{pacer}/responses", pacer_pid, steps, args.events)


if __name__ == "__main__":
    sys.exit(main())
