"""`httpcore_body.raw_chunks` is `aiter_raw()` in fewer steps: same chunks, errors and closing."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
import trio

from privchat.upstream.httpcore_body import _http11_stream, raw_chunks
from privchat.upstream.transport import UpstreamTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENTS = [b"data: %d\n\n" % i for i in range(3)]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _serve(stream: trio.SocketStream) -> None:
    """/ok: three events, one write each, then the end; /stall: one event, then nothing;
    /drop: one event, then the connection closes; /bad: one event, then a broken chunk."""
    while request := await stream.receive_some(65536):
        await stream.send_all(HEAD)
        for event in EVENTS[:1] if b" /ok " not in request else EVENTS:
            await stream.send_all(_chunk(event))
            await trio.sleep(0.01)
        if b" /ok " in request:
            await stream.send_all(b"0\r\n\r\n")
        elif b" /stall " in request:
            await trio.sleep_forever()
        elif b" /drop " in request:
            return
        else:
            await stream.send_all(b"zz\r\n")
            return


Read = Callable[[httpx2.Response], AsyncIterator[bytes]]
READS: list[Read] = [lambda r: r.aiter_raw(), raw_chunks]


async def _outcome(client: httpx2.AsyncClient, url: str, read: Read) -> tuple[Any, ...]:
    chunks: list[bytes] = []
    error: BaseException | None = None
    async with client.stream("GET", url) as r:
        assert _http11_stream(r) is not None  # the direct path is the one under test
        try:
            async for chunk in read(r):
                chunks.append(chunk)
        except httpx2.HTTPError as exc:
            error = exc
        closed = r.is_closed
        downloaded = r.num_bytes_downloaded
    request = getattr(error, "request", None) if error is not None else None
    return (
        b"".join(chunks),
        type(error),
        request is r.request if error else None,
        closed,
        downloaded,
    )


@pytest.mark.parametrize("path", ["/ok", "/stall", "/drop", "/bad"])
async def test_same_bytes_errors_and_closing_as_aiter_raw(nursery: trio.Nursery, path: str) -> None:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, _serve, 0, host="127.0.0.1"))
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}{path}"
    outcomes = []
    for read in READS:
        transport = UpstreamTransport(httpx2.Limits(max_connections=4))
        timeout = httpx2.Timeout(5, read=0.2)
        async with httpx2.AsyncClient(transport=transport, timeout=timeout) as client:
            outcomes.append(await _outcome(client, url, read))
            # The connection went back to the pool (or was dropped) and the pool is usable.
            assert transport._pool._requests == []
            if path == "/ok":
                again = await _outcome(client, url, read)
                assert again == outcomes[-1]
    assert outcomes[0] == outcomes[1]
    body, error, _, closed, _ = outcomes[1]
    assert closed
    assert body == (b"".join(EVENTS) if path == "/ok" else EVENTS[0])
    expected = {
        "/ok": type(None),
        "/stall": httpx2.ReadTimeout,
        "/drop": httpx2.RemoteProtocolError,
        "/bad": httpx2.RemoteProtocolError,
    }
    assert error is expected[path]


async def test_a_cancelled_read_closes_the_connection(nursery: trio.Nursery) -> None:
    """Cancelled mid-body (a client gone), the connection is closed, not returned for reuse."""
    listeners = await nursery.start(functools.partial(trio.serve_tcp, _serve, 0, host="127.0.0.1"))
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/stall"
    transport = UpstreamTransport(httpx2.Limits(max_connections=4))
    async with httpx2.AsyncClient(transport=transport) as client:
        async with client.stream("GET", url) as r:
            got = trio.Event()
            with trio.CancelScope() as scope:
                async for _ in raw_chunks(r):
                    got.set()
                    scope.cancel()
            assert scope.cancelled_caught
            assert got.is_set()
        assert r.is_closed
        assert transport._pool.connections == []
        assert transport._pool._requests == []
