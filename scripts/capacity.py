"""The capacity phase of `bench_proxy.py`: N concurrent long token streams, N = 50, 100, ...

Each stream is one `POST /v1/responses` asking the fake for `EVENTS` delta events, one every
`PERIOD` (50 events/s per stream). The streams are read by several client processes (`worker`
below, raw Trio sockets: a read costs a few microseconds, so the clients stay far from being the
bottleneck, and their own CPU is reported), started evenly spread over `RAMP` seconds.

For every event the client notes when it was read, relative to the stream's first event. The
relay's added delay of event i is that time minus the median of the same over the direct streams
(against the fake, no relay) at the same N, measured in the same run: the fake's own pacing drift
cancels out. Per target and N: added delay p50/p99, errors (non-200, short or aborted streams),
the relay process's CPU per 1,000 relayed events (its own CPU time over the run / events read by
the clients), its peak RSS, the fake's CPU and the clients' CPU.

    python scripts/capacity.py worker < job.json   (used by bench_proxy.py)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import trio
from benchkit import percentile

EVENTS = 500
PERIOD_MS = 20
RAMP = 2.0
WORKERS = 4
LIMIT_P99_MS = 50.0
BODY = json.dumps(
    {
        "model": "privchat-dev/echo",
        "input": [{"role": "user", "content": "Say hello"}],
        "stream": True,
    }
).encode()


# ---------------------------------------------------------------- the client process


async def _stream(url: str, token: str, events: int, start_at: float) -> dict[str, Any]:
    await trio.sleep_until(start_at)
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\nx-fake-deltas: {events}\r\n"
        f"x-fake-delay-ms: {PERIOD_MS}\r\nx-fake-pace: absolute\r\n\r\n"
    ).encode()
    arrivals: list[float] = []
    error = None
    data = b""
    try:
        with trio.fail_after(events * PERIOD_MS / 1000 * 4 + 60):
            stream = await trio.open_tcp_stream(parts.hostname, parts.port)
            async with stream:
                await stream.send_all(head + BODY)
                while b"\r\n\r\n" not in data:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        raise ConnectionError("closed before the response head")
                    data += chunk
                status = data[9:12]
                if status != b"200":
                    raise ConnectionError(f"HTTP {status.decode()}")
                tail = data[data.index(b"\r\n\r\n") + 4 :]
                previous = b""
                while True:
                    if tail:
                        now = time.perf_counter()
                        arrivals.extend([now] * (previous[-1:] + tail).count(b"\n\n"))
                        previous = tail[-5:]
                    if previous.endswith(b"0\r\n\r\n"):
                        break  # the terminating chunk (an SSE chunk ends in "\n\n\r\n")
                    tail = await stream.receive_some(65536)
                    if not tail:
                        break
                if not previous.endswith(b"0\r\n\r\n"):
                    raise ConnectionError("body aborted")
    except (OSError, ConnectionError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    first = arrivals[0] if arrivals else 0.0
    return {"rel_ms": [round((a - first) * 1000, 3) for a in arrivals], "error": error}


async def _worker(job: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base = trio.current_time() - time.monotonic()  # trio's clock is the monotonic clock here

    async def one(token: str, offset: float) -> None:
        result = await _stream(job["url"], token, job["events"], base + job["start_at"] + offset)
        out.append(result)

    async with trio.open_nursery() as nursery:
        for token, offset in zip(job["tokens"], job["offsets"], strict=True):
            nursery.start_soon(one, token, offset)
    return out


def worker_main() -> None:
    job = json.loads(sys.stdin.read())
    streams = trio.run(_worker, job)
    cpu = time.process_time()
    json.dump({"streams": streams, "cpu_s": cpu}, sys.stdout)


# ---------------------------------------------------------------- the coordinator


@dataclass
class Relay:
    """One target: its responses URL, the pid whose CPU is its cost (None: direct)."""

    name: str
    url: str
    pid: int | None
    tokens: list[str] = field(default_factory=list)
    alive: bool = True
    rungs: list[dict[str, Any]] = field(default_factory=list)


def _cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def _run(relay: Relay, n: int, fake_pid: int, events: int) -> dict[str, Any]:
    tokens = relay.tokens[:n] if relay.tokens else ["sk-bench"] * n
    offsets = [RAMP * i / n for i in range(n)]
    start_at = time.monotonic() + 1.5  # time for the client processes to start
    jobs = [
        {
            "url": relay.url,
            "events": events,
            "start_at": start_at,
            "tokens": tokens[w::WORKERS],
            "offsets": offsets[w::WORKERS],
        }
        for w in range(WORKERS)
    ]
    cpu, fake_cpu, wall = _cpu(relay.pid), _cpu(fake_pid), time.monotonic()
    rss = 0
    procs = [
        await trio.lowlevel.open_process(
            [sys.executable, __file__, "worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in jobs
    ]
    outputs: list[bytes] = [b""] * len(procs)

    async def talk(i: int) -> None:
        proc = procs[i]
        assert proc.stdin is not None and proc.stdout is not None
        async with proc.stdin:
            await proc.stdin.send_all(json.dumps(jobs[i]).encode())
        chunks = []
        while chunk := await proc.stdout.receive_some(1 << 20):
            chunks.append(chunk)
        await proc.wait()
        outputs[i] = b"".join(chunks)

    async with trio.open_nursery() as nursery:
        for i in range(len(procs)):
            nursery.start_soon(talk, i)
        if relay.pid is not None:
            proc = psutil.Process(relay.pid)
            while True:
                rss = max(rss, proc.memory_info().rss)
                with trio.move_on_after(0.5):
                    await _all_done(procs)
                    break
    wall = time.monotonic() - wall
    results = [json.loads(o) for o in outputs]
    streams = [s for r in results for s in r["streams"]]
    relayed = sum(len(s["rel_ms"]) for s in streams)
    cpu = _cpu(relay.pid) - cpu
    fake_cpu = _cpu(fake_pid) - fake_cpu
    errors = [s["error"] for s in streams if s["error"]]
    expected = max((len(s["rel_ms"]) for s in streams), default=0)
    short = sum(1 for s in streams if not s["error"] and len(s["rel_ms"]) < expected)
    return {
        "n": n,
        "streams": streams,
        "events": relayed,
        "errors": len(errors) + short,
        "error_kinds": sorted(set(errors))[:5],
        "cpu_ms_per_1000_events": round(cpu / max(1, relayed) * 1e6, 2) if relay.pid else None,
        "relay_cores": round(cpu / wall, 3) if relay.pid else None,
        "rss_mb": round(rss / 2**20, 1) if relay.pid else None,
        "fake_cores": round(fake_cpu / wall, 3),
        "fake_us_per_event": round(fake_cpu / max(1, relayed) * 1e6, 1),
        "clients_cores": round(sum(r["cpu_s"] for r in results) / wall, 3),
        "wall_s": round(wall, 1),
    }


async def _all_done(procs: list[trio.Process]) -> None:
    for proc in procs:
        await proc.wait()


def _lateness(streams: list[dict[str, Any]], reference: list[float]) -> list[float]:
    return [
        rel[i] - reference[i]
        for s in streams
        for rel in [s["rel_ms"]]
        for i in range(1, min(len(rel), len(reference)))
    ]


def _medians(streams: list[dict[str, Any]]) -> list[float]:
    longest = max((len(s["rel_ms"]) for s in streams), default=0)
    return [
        statistics.median(s["rel_ms"][i] for s in streams if len(s["rel_ms"]) > i)
        for i in range(longest)
    ]


async def capacity(
    relays: list[Relay],
    direct_url: str,
    fake_url: str,
    fake_pid: int,
    reset: Any,
    rungs: list[int],
    events: int = EVENTS,
) -> dict[str, Any]:
    """Climb `rungs` for every relay (a relay stops at its first broken rung); the direct
    reference runs at every rung. `reset()` clears the fake's recordings between runs."""
    direct = Relay("direct", direct_url, None)
    out: dict[str, Any] = {"events_per_stream": events, "period_ms": PERIOD_MS, "rungs": []}
    for n in rungs:
        if not any(r.alive for r in relays):
            break
        await reset()
        ref = await _run(direct, n, fake_pid, events)
        medians = _medians(ref["streams"])
        schedule = [i * PERIOD_MS for i in range(len(medians))]
        drift = _lateness(ref["streams"], schedule)
        rung: dict[str, Any] = {
            "n": n,
            "direct": {
                **{k: v for k, v in ref.items() if k not in ("streams",)},
                "drift_ms": {"p50": percentile(drift, 0.5), "p99": percentile(drift, 0.99)},
            },
        }
        print(f"capacity N={n} direct: {_brief(rung['direct'])}", file=sys.stderr, flush=True)
        for relay in relays:
            if not relay.alive:
                continue
            await reset()
            r = await _run(relay, n, fake_pid, events)
            added = _lateness(r["streams"], medians)
            r.pop("streams")
            r["added_ms"] = {
                "p50": round(percentile(added, 0.5), 2),
                "p99": round(percentile(added, 0.99), 2),
            }
            r["ok"] = r["errors"] == 0 and r["added_ms"]["p99"] < LIMIT_P99_MS
            relay.alive = r["ok"]
            rung[relay.name] = r
            print(f"capacity N={n} {relay.name}: {_brief(r)}", file=sys.stderr, flush=True)
        out["rungs"].append(rung)
    out["capacity"] = {
        relay.name: max(
            (
                rung["n"]
                for rung in out["rungs"]
                if all(rung.get(relay.name, {}).get("ok", False) for rung in _upto(out, rung["n"]))
            ),
            default=0,
        )
        for relay in relays
    }
    return out


def _upto(out: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [rung for rung in out["rungs"] if rung["n"] <= n]


def _brief(r: dict[str, Any]) -> str:
    keep = ("added_ms", "errors", "cpu_ms_per_1000_events", "relay_cores", "fake_cores")
    return json.dumps({k: r[k] for k in (*keep, "clients_cores", "drift_ms") if k in r})


def cpu_per_1000(out: dict[str, Any], name: str) -> float | None:
    """The relay's CPU per 1,000 events at the highest rung every relay in `out` completed
    without errors (a common load, so rungs compare), else at its own highest."""
    values = [rung[name]["cpu_ms_per_1000_events"] for rung in out["rungs"] if name in rung]
    return values[-1] if values else None


def table(out: dict[str, Any], names: list[str]) -> str:
    rows = [
        (
            "N",
            "target",
            "added p50/p99 (ms)",
            "errors",
            "CPU ms/1k ev",
            "cores",
            "RSS MB",
            "fake cores",
            "client cores",
        )
    ]
    for rung in out["rungs"]:
        d = rung["direct"]
        rows.append(
            (
                str(rung["n"]),
                "direct",
                f"drift {d['drift_ms']['p50']:.1f} / {d['drift_ms']['p99']:.1f}",
                str(d["errors"]),
                "",
                "",
                "",
                str(d["fake_cores"]),
                str(d["clients_cores"]),
            )
        )
        for name in names:
            if name not in rung:
                continue
            r = rung[name]
            rows.append(
                (
                    "",
                    name + ("" if r["ok"] else " (broken)"),
                    f"{r['added_ms']['p50']} / {r['added_ms']['p99']}",
                    str(r["errors"]),
                    str(r["cpu_ms_per_1000_events"]),
                    str(r["relay_cores"]),
                    str(r["rss_mb"]),
                    str(r["fake_cores"]),
                    str(r["clients_cores"]),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    caps = ", ".join(f"{k} {v}" for k, v in out["capacity"].items())
    return (
        "\n".join(lines)
        + f"\n\ncapacity (largest N, added p99 < {LIMIT_P99_MS:g} ms, no errors): {caps}"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        worker_main()
