"""The capacity phase's upstream: the fake's token streams, replayed on schedule at a few µs each.

The fake (`privchat.devtools.fake_cloud`, Hypercorn + ASGI) costs about 120 µs of CPU per event
it sends. At 300 streams of 50 events/s that is 1.8 cores, more than this 2-core machine can
spare beside the relay under test, so in the capacity phase the fake itself fell behind its
schedule (direct streams at N = 200: p50 drift 1 s) and every rung looked broken. This server
replays the fake's own bytes instead: for a `POST .../responses` it fetches, once per delta count,
the stream the fake answers (`x-fake-deltas: K`, no delays), and then sends every event as one
chunk of its own at its absolute due time (`x-fake-first-delay-ms`, then every `x-fake-delay-ms`,
as the fake's `x-fake-pace: absolute`), with fresh response and item ids (same length) per
stream. One thread, one `epoll`, a heap of due events: an event costs a heap pop and one
`send` system call. Anything else gets a 404. Its CPU is reported beside every capacity rung.

    python scripts/pacer.py --port N --fake http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import gc
import heapq
import re
import select
import socket
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
_IDS = re.compile(rb"(?:resp|msg)_[0-9a-f]{32}")


@dataclass(eq=False)
class Conn:
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    frames: list[bytes] = field(default_factory=list)
    schedule: list[float] = field(default_factory=list)  # each frame's due time (monotonic)
    streaming: bool = False
    closed: bool = False


class Pacer:
    def __init__(self, port: int, fake: str) -> None:
        self.fake = fake.rstrip("/")
        self.templates: dict[int, list[bytes]] = {}
        self.listener = socket.create_server(("127.0.0.1", port), backlog=4096)
        self.listener.setblocking(False)
        self.epoll = select.epoll()
        self.epoll.register(self.listener.fileno(), select.EPOLLIN)
        self.conns: dict[int, Conn] = {}
        self.due: list[tuple[float, int, Conn, int]] = []  # (due, tiebreak, conn, frame index)
        self.seq = 0

    def template(self, deltas: int) -> list[bytes]:
        """The fake's events for `deltas` deltas, each framed as one chunk."""
        if deltas not in self.templates:
            req = urllib.request.Request(
                f"{self.fake}/v1/responses",
                data=b'{"model":"privchat-dev/echo","input":"Say hello","stream":true}',
                headers={
                    "authorization": "Bearer sk-bench",
                    "content-type": "application/json",
                    "x-fake-deltas": str(deltas),
                },
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = resp.read()
            events = [e + b"\n\n" for e in body.split(b"\n\n") if e.strip()]
            self.templates[deltas] = events
        return self.templates[deltas]

    def serve(self) -> None:
        while True:
            timeout = max(0.0, self.due[0][0] - time.monotonic()) if self.due else -1
            for fd, mask in self.epoll.poll(timeout):
                if fd == self.listener.fileno():
                    self.accept()
                    continue
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                if mask & select.EPOLLOUT:
                    self.flush(conn)
                if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    self.receive(conn)
            now = time.monotonic()
            while self.due and self.due[0][0] <= now:
                _, _, conn, index = heapq.heappop(self.due)
                if not conn.closed:
                    self.next_event(conn, index)

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns[sock.fileno()] = Conn(sock)
            self.epoll.register(sock.fileno(), select.EPOLLIN)

    def receive(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        conn.inbuf += data
        self.handle(conn)

    def handle(self, conn: Conn) -> None:
        """Start the next complete request on `conn`, unless a stream is still playing."""
        if conn.streaming or b"\r\n\r\n" not in conn.inbuf:
            return
        head, _, rest = bytes(conn.inbuf).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:])
        )
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            return
        conn.inbuf = bytearray(rest[length:])
        if method != "POST" or not target.endswith("/responses"):
            self.send(conn, NOT_FOUND)
            return
        ids: dict[bytes, bytes] = {}

        def fresh(match: re.Match[bytes]) -> bytes:
            old = match.group(0)
            if old not in ids:
                ids[old] = old.split(b"_")[0] + b"_" + uuid.uuid4().hex.encode()
            return ids[old]

        events = self.template(int(headers.get("x-fake-deltas", "8")))
        conn.frames = [_chunk(_IDS.sub(fresh, e)) for e in events]
        conn.frames[-1] += b"0\r\n\r\n"
        conn.streaming = True
        self.send(conn, HEAD)
        first = float(headers.get("x-fake-first-delay-ms", "0")) / 1000
        delay = float(headers.get("x-fake-delay-ms", "0")) / 1000
        start = time.monotonic() + first
        conn.schedule = [start + i * delay for i in range(len(conn.frames))]
        self.push(conn, 0)

    def push(self, conn: Conn, index: int) -> None:
        self.seq += 1
        heapq.heappush(self.due, (conn.schedule[index], self.seq, conn, index))

    def next_event(self, conn: Conn, index: int) -> None:
        self.send(conn, conn.frames[index])
        if index + 1 < len(conn.frames):
            self.push(conn, index + 1)
        else:
            conn.streaming = False
            conn.frames = []
            self.handle(conn)

    def send(self, conn: Conn, data: bytes) -> None:
        if conn.closed:
            return
        if conn.out:
            conn.out += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close(conn)
            return
        if sent < len(data):
            conn.out += data[sent:]
            self.epoll.modify(conn.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    def flush(self, conn: Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        except OSError:
            self.close(conn)
            return
        del conn.out[:sent]
        if not conn.out:
            self.epoll.modify(conn.sock.fileno(), select.EPOLLIN)

    def close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        self.epoll.unregister(fd)
        conn.sock.close()


def _chunk(event: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(event), event)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fake", required=True, help="the fake's base URL (no /v1)")
    args = parser.parse_args()
    gc.freeze()
    Pacer(args.port, args.fake).serve()
