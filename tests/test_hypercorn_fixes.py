"""Hypercorn's body path as `hypercorn_fixes` changes it: the bytes on the wire are h11's."""

from __future__ import annotations

from typing import Any

import h11
import hypercorn.protocol
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from privchat import hypercorn_fixes

SIZES = [1, 15, 16, 255, 256, 4095, 70000, 8 * 1024 * 1024]  # the last: partial writes


def _body(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for size in SIZES:
        await send({"type": "http.response.body", "body": _body(size), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": True})  # nothing
    await send({"type": "http.response.body", "body": b"last", "more_body": False})


def _h11_body() -> bytes:
    """What h11 itself writes for the same messages."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    conn.next_event()
    conn.send(h11.Response(status_code=200, headers=[]))
    out = b"".join(conn.send(h11.Data(data=_body(size))) for size in SIZES)
    return out + conn.send(h11.Data(data=b"last")) + conn.send(h11.EndOfMessage())


async def _fetch(port: int, method: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(method + b" / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    await stream.aclose()
    return data


async def test_chunks_framed_as_h11_frames_them(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    hypercorn_fixes.install()
    assert hypercorn.protocol.H11Protocol is hypercorn_fixes._H11Protocol
    framed: list[int] = []
    original = hypercorn_fixes._H11Protocol.send_chunk
    monkeypatch.setattr(
        hypercorn_fixes._H11Protocol,
        "send_chunk",
        lambda self, data: framed.append(len(data)) or original(self, data),
    )
    config = Config()
    config.bind = ["127.0.0.1:0"]
    binds = await nursery.start(serve, app, config)
    port = int(binds[0].rsplit(":", 1)[1])
    raw = await _fetch(port, b"GET")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == _h11_body()
    assert framed == [*SIZES, 4]  # every non-empty chunk, the last one too, was framed here
    raw = await _fetch(port, b"HEAD")  # a body Hypercorn must suppress
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b""


WRITES: list[bool] = []  # what `direct_app`'s direct writes returned


async def direct_app(scope: Any, receive: Any, send: Any) -> None:
    """`app`'s messages, every other body chunk written with `body_writer()` instead."""
    if scope["type"] == "lifespan":
        await app(scope, receive, send)
        return
    write = hypercorn_fixes.body_writer()
    assert write is not None
    WRITES.append(await write(b"too early"))  # no response head yet: Hypercorn's path takes it
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for index, size in enumerate(SIZES):
        if index % 2:
            WRITES.append(await write(_body(size)))
            WRITES.append(await write(b""))  # nothing
        else:
            await send({"type": "http.response.body", "body": _body(size), "more_body": True})
    await send({"type": "http.response.body", "body": b"last", "more_body": False})
    WRITES.append(await write(b"too late"))  # the body has ended


async def test_body_writer_writes_what_hypercorn_would(nursery: trio.Nursery) -> None:
    hypercorn_fixes.install()
    assert hypercorn_fixes.body_writer() is None  # not a request's task
    config = Config()
    config.bind = ["127.0.0.1:0"]
    binds = await nursery.start(serve, direct_app, config)
    port = int(binds[0].rsplit(":", 1)[1])
    direct = len(SIZES) // 2 * 2
    # HEAD: h11 frames no body (content-length 0), so nothing is taken here.
    for method, taken in ((b"GET", True), (b"HEAD", False)):
        WRITES.clear()
        raw = await _fetch(port, method)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert WRITES == [False, *[taken] * direct, False]
        # Same bytes, same order, whichever path each chunk took:
        assert body == (_h11_body() if method == b"GET" else b"")
