"""The capacity phase of `bench_proxy.py`: N concurrent long token streams, N = 50, 100, ...

Each stream is one `POST /v1/responses` asking for `EVENTS` delta events, one every `PERIOD_MS`
(50 events/s per stream), started evenly spread over `RAMP` seconds. Every relay under test
forwards to `scripts/pacer.py`, which replays the fake's own event bytes on an absolute schedule;
the direct reference reads the pacer itself at the same N in the same run.

How the upstream and the clients are kept from being the bottleneck (the first version measured
them, not the relays: the fake costs ~120 µs of CPU per event, so at N = 200 it needed 1.2 of
the machine's 2 cores and fell a second behind its schedule, and so did every rung):
- the pacer sends an event with one heap pop and one `send` (15-25 µs of CPU per event, start-up
  included; 0.15 cores at N = 300);
- the clients are `WORKERS` processes, each one `epoll` loop over its sockets, no framework
  (a read is a `recv` and a count, ~30-40 µs per event including the processes' start-up),
  with the garbage collector off;
- both report their CPU beside every rung (`fake_cores`/`fake_us_per_event` for the pacer,
  `clients_cores`/`clients_us_per_event`), and the direct streams' own lateness (`direct`
  row) shows what the pacer and clients add by themselves: a few ms at p99 up to N = 300.

Per event the client notes when it was read. Lateness of event i = (arrival_i - i x PERIOD) -
min over the stream of the same: its delay beyond the stream's least delayed event (no event
arrives before it is sent, and the pacer sends event i at origin + i x PERIOD). A relay that
falls behind shows as lateness growing along the stream. Kept apart, not in the criterion: the
time from the request to the first event (`first_event_ms`, the relay's start-up under a burst
of N requests in RAMP seconds) and the events read while streams were still being opened
(`lateness_all_ms` has them). The relay's added delay = its lateness p50/p99 over the events
read while all N streams were live, minus the direct streams' at the same N. Per target and N
also: errors (non-200, short or aborted streams), the relay process's CPU per 1,000 relayed
events (its own user + system CPU time over the run / events read), its peak RSS.

    python scripts/capacity.py worker < job.json   (used by bench_proxy.py)
"""

from __future__ import annotations

import gc
import json
import select
import socket
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


@dataclass(eq=False)
class _Stream:
    """One client stream: its socket, what it has read, when each event arrived."""

    token: str
    start_at: float
    sock: socket.socket | None = None
    data: bytes = b""
    head_done: bool = False
    previous: bytes = b""
    arrivals: list[float] = field(default_factory=list)
    error: str | None = None
    done: bool = False
    sent: float = 0.0

    def result(self) -> dict[str, Any]:
        first = self.arrivals[0] if self.arrivals else 0.0
        rel = [round((a - first) * 1000, 3) for a in self.arrivals]
        first_ms = round((first - self.sent) * 1000, 3) if self.arrivals else None
        return {"rel_ms": rel, "first_at": first, "first_ms": first_ms, "error": self.error}


def _request(url: str, token: str, events: int) -> bytes:
    parts = urlsplit(url)
    return (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\nx-fake-deltas: {events}\r\n"
        f"x-fake-delay-ms: {PERIOD_MS}\r\nx-fake-pace: absolute\r\n\r\n"
    ).encode() + BODY


def _read(stream: _Stream, chunk: bytes, now: float) -> None:
    """Note the events in `chunk` (an SSE event ends in a blank line) and the stream's end."""
    if not stream.head_done:
        stream.data += chunk
        if b"\r\n\r\n" not in stream.data:
            return
        if stream.data[9:12] != b"200":
            raise ConnectionError(f"HTTP {stream.data[9:12].decode()}")
        stream.head_done = True
        chunk = stream.data[stream.data.index(b"\r\n\r\n") + 4 :]
        stream.data = b""
    if chunk:
        stream.arrivals.extend([now] * (stream.previous[-1:] + chunk).count(b"\n\n"))
        stream.previous = (stream.previous + chunk)[-5:]
    if stream.previous.endswith(b"0\r\n\r\n"):  # the terminating chunk
        stream.done = True


def run_worker(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Open every stream at its start time and read them all from one `epoll` loop: a read
    costs a `recv` and a count, so the clients stay far from being the bottleneck."""
    parts = urlsplit(job["url"])
    address = (parts.hostname, parts.port)
    request = _request
    streams = [
        _Stream(token, job["start_at"] + offset)
        for token, offset in zip(job["tokens"], job["offsets"], strict=True)
    ]
    pending = sorted(streams, key=lambda s: s.start_at, reverse=True)
    deadline = job["start_at"] + RAMP + job["events"] * PERIOD_MS / 1000 * 4 + 60
    epoll = select.epoll()
    live: dict[int, _Stream] = {}

    def finish(stream: _Stream, error: str | None = None) -> None:
        assert stream.sock is not None
        if error is None and not stream.done:
            error = "ConnectionError: body aborted"
        stream.error = error
        live.pop(stream.sock.fileno(), None)
        epoll.unregister(stream.sock.fileno())
        stream.sock.close()

    while pending or live:
        now = time.monotonic()
        if now > deadline:
            for stream in list(live.values()):
                finish(stream, "TooSlowError")
            break
        while pending and pending[-1].start_at <= now:
            stream = pending.pop()
            try:
                stream.sock = socket.create_connection(address)
            except OSError as exc:
                stream.error = f"{type(exc).__name__}: {exc}"
                continue
            stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream.sock.sendall(request(job["url"], stream.token, job["events"]))
            stream.sent = time.perf_counter()
            stream.sock.setblocking(False)
            live[stream.sock.fileno()] = stream
            epoll.register(stream.sock.fileno(), select.EPOLLIN)
        timeout = max(0.0, pending[-1].start_at - now) if pending else 1.0
        for fd, _ in epoll.poll(timeout):
            stream = live[fd]
            assert stream.sock is not None
            try:
                chunk = stream.sock.recv(65536)
                if not chunk:
                    finish(stream)
                    continue
                _read(stream, chunk, time.perf_counter())
            except BlockingIOError:
                continue
            except (OSError, ConnectionError) as exc:
                finish(stream, f"{type(exc).__name__}: {exc}")
                continue
            if stream.done:
                finish(stream)
    return [s.result() for s in streams]


def worker_main() -> None:
    job = json.loads(sys.stdin.read())
    gc.freeze()  # the arrivals lists are all that grows; no cycles to collect
    gc.disable()
    streams = run_worker(job)
    json.dump({"streams": streams, "cpu_s": time.process_time()}, sys.stdout)


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


def _sys(pid: int | None) -> float:
    return psutil.Process(pid).cpu_times().system if pid is not None else 0.0


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
    sys_cpu = _sys(relay.pid)
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
    sys_cpu = _sys(relay.pid) - sys_cpu
    fake_cpu = _cpu(fake_pid) - fake_cpu
    errors = [s["error"] for s in streams if s["error"]]
    firsts = [s["first_ms"] for s in streams if s["first_ms"] is not None]
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
        "relay_system_share": round(sys_cpu / cpu, 2) if relay.pid and cpu else None,
        "rss_mb": round(rss / 2**20, 1) if relay.pid else None,
        "fake_cores": round(fake_cpu / wall, 3),
        "fake_us_per_event": round(fake_cpu / max(1, relayed) * 1e6, 1),
        "clients_cores": round(sum(r["cpu_s"] for r in results) / wall, 3),
        "clients_us_per_event": round(sum(r["cpu_s"] for r in results) / max(1, relayed) * 1e6, 1),
        "first_event_ms": _pcts(firsts) if firsts else None,
        "wall_s": round(wall, 1),
    }


async def _all_done(procs: list[trio.Process]) -> None:
    for proc in procs:
        await proc.wait()


def _lateness(streams: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Every event's delay beyond its stream's least delayed event, (all events, the events
    read while all N streams were live).

    The upstream sends event i at the stream's origin + i x PERIOD, and no event arrives before
    it was sent, so `min(arrival_i - i x PERIOD)` is the origin plus the smallest delay of the
    path: a relay that falls behind shows as growing lateness. The stream's start (time to its
    first event) is kept out of it and reported apart (`first_event_ms`), and so is the ramp:
    while streams are still being opened the relay also answers N requests in RAMP seconds,
    which is start-up, not what N live streams cost."""
    live = [s for s in streams if s["rel_ms"]]
    lo = max((s["first_at"] * 1000 for s in live), default=0.0)
    hi = min((s["first_at"] * 1000 + s["rel_ms"][-1] for s in live), default=0.0)
    every: list[float] = []
    steady: list[float] = []
    for s in live:
        offsets = [t - i * PERIOD_MS for i, t in enumerate(s["rel_ms"])]
        origin = min(offsets)
        start = s["first_at"] * 1000
        for t, o in zip(s["rel_ms"], offsets, strict=True):
            every.append(o - origin)
            if lo <= start + t <= hi:
                steady.append(o - origin)
    return every, steady


def _pcts(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.5), 2), "p99": round(percentile(values, 0.99), 2)}


async def capacity(
    relays: list[Relay],
    direct_url: str,
    fake_pid: int,
    rungs: list[int],
    events: int = EVENTS,
) -> dict[str, Any]:
    """Climb `rungs` for every relay (a relay stops at its first broken rung); the direct
    reference runs at every rung. `fake_pid` is the upstream's (the pacer's) process."""
    direct = Relay("direct", direct_url, None)
    out: dict[str, Any] = {"events_per_stream": events, "period_ms": PERIOD_MS, "rungs": []}
    for n in rungs:
        if not any(r.alive for r in relays):
            break
        ref = await _run(direct, n, fake_pid, events)
        every, steady = _lateness(ref.pop("streams"))
        base = _pcts(steady or every)
        ref["lateness_ms"], ref["lateness_all_ms"] = base, _pcts(every)
        rung: dict[str, Any] = {"n": n, "direct": ref}
        print(f"capacity N={n} direct: {_brief(rung['direct'])}", file=sys.stderr, flush=True)
        for relay in relays:
            if not relay.alive:
                continue
            r = await _run(relay, n, fake_pid, events)
            every, steady = _lateness(r.pop("streams"))
            late = _pcts(steady or every)
            r["lateness_ms"], r["lateness_all_ms"] = late, _pcts(every)
            r["steady_events"] = len(steady)
            r["added_ms"] = {q: round(late[q] - base[q], 2) for q in ("p50", "p99")}
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
    extra = ("clients_cores", "lateness_ms", "first_event_ms")
    return json.dumps({k: r[k] for k in (*keep, *extra) if k in r})


def cpu_per_1000(out: dict[str, Any], name: str) -> float | None:
    """The relay's CPU per 1,000 events at the highest rung every relay in `out` completed
    without errors (a common load, so rungs compare), else at its own highest."""
    values = [rung[name]["cpu_ms_per_1000_events"] for rung in out["rungs"] if name in rung]
    return values[-1] if values else None


def table(out: dict[str, Any], names: list[str]) -> str:
    head = (
        "N",
        "target",
        "added p50/p99 ms",
        "all-events p99",
        "first event p50/p99",
        "errors",
        "CPU ms/1k ev",
        "cores",
        "RSS MB",
        "pacer cores",
        "client cores",
    )
    rows = [head]

    def pair(d: dict[str, float] | None) -> str:
        return f"{d['p50']:.1f} / {d['p99']:.1f}" if d else ""

    for rung in out["rungs"]:
        for name in ["direct", *names]:
            if name not in rung:
                continue
            r = rung[name]
            direct = name == "direct"
            rows.append(
                (
                    str(rung["n"]) if direct else "",
                    name + ("" if direct or r["ok"] else " (broken)"),
                    "late " + pair(r["lateness_ms"]) if direct else pair(r["added_ms"]),
                    f"{r['lateness_all_ms']['p99']:.1f}",
                    pair(r["first_event_ms"]),
                    str(r["errors"]),
                    "" if direct else str(r["cpu_ms_per_1000_events"]),
                    "" if direct else str(r["relay_cores"]),
                    "" if direct else str(r["rss_mb"]),
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
