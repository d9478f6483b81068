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


async def _raw_server(nursery: trio.Nursery, serve: Any) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_chunks_already_received_leave_together_and_nothing_waits(
    nursery: trio.Nursery,
) -> None:
    """Three events in one upstream write come out as one chunk (one write to the client);
    the fourth, sent only once the client has the first three, comes out on its own."""
    got_first = trio.Event()

    async def serve(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(HEAD + b"".join(_chunk(b"data: %d\n\n" % i) for i in range(3)))
        await got_first.wait()
        await stream.send_all(_chunk(b"data: 3\n\n") + b"0\r\n\r\n")

    port = await _raw_server(nursery, serve)
    transport = UpstreamTransport(httpx2.Limits(max_connections=4))
    async with httpx2.AsyncClient(transport=transport) as client:
        async with client.stream("GET", f"http://127.0.0.1:{port}/") as r:
            chunks = []
            async for chunk in r.aiter_raw():
                chunks.append(chunk)
                got_first.set()
    assert chunks == [b"data: 0\n\ndata: 1\n\ndata: 2\n\n", b"data: 3\n\n"]


async def test_plain_socket_reads_time_out_and_see_a_broken_body(nursery: trio.Nursery) -> None:
    """The direct socket reads keep httpcore2's errors: the idle timeout is a ReadTimeout;
    a connection closed mid-body is an error after the bytes that did arrive."""
    stall = trio.Event()

    async def serve(stream: trio.SocketStream) -> None:
        request = await stream.receive_some(65536)
        await stream.send_all(HEAD + _chunk(b"data: 0\n\n"))
        if b"/stall" in request:
            await stall.wait()

    port = await _raw_server(nursery, serve)
    transport = UpstreamTransport(httpx2.Limits(max_connections=4))
    timeout = httpx2.Timeout(5, read=0.2)
    async with httpx2.AsyncClient(transport=transport, timeout=timeout) as client:
        for path, error in (("/stall", httpx2.ReadTimeout), ("/drop", httpx2.RemoteProtocolError)):
            chunks = []
            try:
                async with client.stream("GET", f"http://127.0.0.1:{port}{path}") as r:
                    async for chunk in r.aiter_raw():
                        chunks.append(chunk)
            except httpx2.TransportError as exc:
                assert isinstance(exc, error), exc
            else:
                raise AssertionError(f"{path}: no error")
            assert chunks == [b"data: 0\n\n"]
    stall.set()
