"""The upstream connections send a request's head and a small body in one write."""

from __future__ import annotations

import functools
from typing import Any

import httpcore2
import httpx2
import trio

from privchat.upstream.transport import JOIN_LIMIT, CoalescingStream, UpstreamTransport


class Recording(httpcore2.AsyncNetworkStream):
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.writes.append(bytes(buffer))

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return b"answer"

    async def aclose(self) -> None:
        pass

    def get_extra_info(self, info: str) -> Any:
        return info


async def test_head_and_body_leave_together_and_empty_writes_are_skipped() -> None:
    inner = Recording()
    stream = CoalescingStream(inner)
    await stream.write(b"POST / HTTP/1.1\r\n\r\n")
    assert inner.writes == []
    await stream.write(b"body")
    await stream.write(b"")  # the end of a sized body
    assert inner.writes == [b"POST / HTTP/1.1\r\n\r\nbody"]
    assert await stream.read(10) == b"answer"
    # a request without a body: its head goes out when the answer is read
    await stream.write(b"GET / HTTP/1.1\r\n\r\n")
    await stream.write(b"")
    assert len(inner.writes) == 1
    await stream.read(10)
    assert inner.writes[1:] == [b"GET / HTTP/1.1\r\n\r\n"]
    assert stream.get_extra_info("is_readable") == "is_readable"


async def test_streamed_and_large_bodies_are_written_as_they_come() -> None:
    inner = Recording()
    stream = CoalescingStream(inner)
    await stream.write(b"HEAD")
    await stream.write(b"a")
    await stream.write(b"b")
    await stream.write(b"0\r\n\r\n")
    assert inner.writes == [b"HEADa", b"b", b"0\r\n\r\n"]
    await stream.read(10)
    large = b"x" * (JOIN_LIMIT + 1)
    await stream.write(b"HEAD")
    await stream.write(large)
    assert inner.writes[3:] == [b"HEAD", large]


async def test_requests_through_the_transport_arrive_whole(nursery: trio.Nursery) -> None:
    """A real server on loopback reads each request in one segment: head and body together."""
    segments: list[bytes] = []

    async def serve(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(65536):
            segments.append(data)
            if data.endswith(b"hello"):
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    transport = UpstreamTransport(httpx2.Limits(max_connections=4))
    async with httpx2.AsyncClient(transport=transport) as client:
        for _ in range(3):
            r = await client.post(f"http://127.0.0.1:{port}/", content=b"hello")
            assert r.content == b"ok"
    assert len(segments) == 3
    assert all(
        s.startswith(b"POST / HTTP/1.1\r\n") and s.endswith(b"\r\n\r\nhello") for s in segments
    )
