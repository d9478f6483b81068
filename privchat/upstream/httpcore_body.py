"""How privchat reads upstream response bodies from httpcore2/httpx2, with fewer steps per chunk.

Body bytes already received leave together (an adaptation of httpcore2's HTTP/1.1 connection):

httpcore2 reads up to 64 KiB from the socket, feeds it to h11 and then yields the body one h11
`Data` event (one upstream chunk, for a token stream one SSE event) at a time. When a relay falls
behind, a single read holds many events, and each became its own write to the client, with the
whole per-chunk path (Quart, Hypercorn, h11, a system call) paid per event. Here, after a `Data`
event, every further `Data` event h11 can produce from bytes it already holds is joined to it:
one chunk, one write. Nothing is ever waited for (no read is made to fill a batch), so the relay
stays unbuffered, and the bytes are the same bytes in the same order. An error found while
joining is raised after the joined bytes are yielded, as it was after the single events.

httpcore2's `_receive_event` is inlined into the body loop: it enters a `map_exceptions` context
manager (a generator-based one) per call, twice per event, for h11's rare protocol error; the
error is mapped the same way here (`RemoteProtocolError` from h11's), with a plain `try`.

Upstream-worthy as is: it changes `AsyncHTTP11Connection._receive_response_body` only; `install()`
applies it (idempotent).

Whole chunks are parsed here, not by h11 (`_take_chunks`): per relayed event h11 ran a regular
expression for the chunk header, made a `Data` event, passed it through its state machine
(copying its state dict) and answered `NEED_DATA` once more, about 10 µs in all. When h11 is
between chunks of a chunked body and holds no bytes, the complete chunks at the start of a read
are taken here and whatever follows them is fed to h11 as before; then h11 is known to need
data, and the next read is made without asking it.

`raw_chunks(response)` is `response.aiter_raw()` with the layers between it and that body loop
taken out. Each chunk used to pass through six async generators (`aiter_raw`, httpx2's
`BoundAsyncStream` and `AsyncResponseStream`, httpcore2's `HTTP11ConnectionByteStream`, its
`aclosing` wrapper, the body loop), each resumed and suspended per chunk. For a response on an
HTTP/1.1 connection of httpx2's own transport stack (the only kind privchat opens) it iterates
the body loop directly and does once per body what the layers did: httpcore2's trace of the body,
closing the connection's response on any error (shielded), httpx2's exception mapping and
request context, the byte count, and closing the response at the end. Any other response is
read with `aiter_raw()`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import h11
import httpx2
from h11._readers import ChunkedReader
from httpcore2._async.connection_pool import PoolByteStream
from httpcore2._async.http11 import AsyncHTTP11Connection, HTTP11ConnectionByteStream
from httpcore2._exceptions import RemoteProtocolError
from httpcore2._synchronization import AsyncShieldCancellation
from httpcore2._trace import Trace
from httpx2._client import BoundAsyncStream
from httpx2._exceptions import request_context
from httpx2._transports.default import AsyncResponseStream, map_httpcore_exceptions

logger = logging.getLogger("httpcore2.http11")  # httpcore2's own, for its trace of the body


_CHUNK_HEAD = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n")  # a chunk size, no extension


def _take_chunks(state: h11.Connection, data: bytes) -> tuple[list[bytes], bool]:
    """Receive `data` into h11: the complete chunks at its start parsed here, the rest fed to h11.

    Returns the payloads of the chunks parsed here and whether anything was fed to h11. Only
    where h11's own state allows it: their side sending a chunked body, h11's chunk reader
    between chunks (at most the CRLF after the last chunk still to match), nothing buffered in
    h11. A chunk is taken only whole, with its CRLF; the last chunk (size 0), a chunk extension,
    a partial or malformed chunk and everything after it are left to h11, which parses them as
    it always does. Parsing a whole chunk changes nothing in h11 but its reader's position.
    """
    reader = state._reader
    if (
        type(reader) is not ChunkedReader
        or state.their_state is not h11.SEND_BODY
        or reader._bytes_in_chunk
        or reader._reading_trailer
        or state._receive_buffer
        or state._receive_buffer_closed
    ):
        state.receive_data(data)
        return [], True
    pos = 0
    discard = reader._bytes_to_discard
    if discard:
        if not data.startswith(discard):
            state.receive_data(data)
            return [], True
        pos = len(discard)
    parts = []
    end_of_data = len(data)
    while True:
        head = _CHUNK_HEAD.match(data, pos)
        if head is None:
            break
        start = head.end()
        end = start + int(head[1], 16)
        if end == start or end + 2 > end_of_data or data[end : end + 2] != b"\r\n":
            break
        parts.append(data[start:end])
        pos = end + 2
    if pos:
        reader._bytes_to_discard = b""
    if pos < end_of_data:
        state.receive_data(data[pos:] if pos else data)
        return parts, True
    return parts, False


async def _receive_response_body(self: Any, request: Any) -> AsyncGenerator[bytes]:
    timeout = request.extensions.get("timeout", {}).get("read", None)
    state = self._h11_state
    stream = self._network_stream
    size = self.READ_NUM_BYTES
    need_data = False  # h11 holds nothing and would answer NEED_DATA
    while True:
        parts: list[bytes] = []
        if need_data:
            event: Any = h11.NEED_DATA
            need_data = False
        else:
            # httpcore2's `_receive_event`, inlined: its `map_exceptions` context manager per
            # call (two calls per event) cost more than the rest of it.
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise RemoteProtocolError(exc) from exc
        if event is h11.NEED_DATA:
            data = await stream.read(size, timeout=timeout)
            if data == b"" and state.their_state == h11.SEND_RESPONSE:
                raise RemoteProtocolError("Server disconnected without sending a response.")
            if not data:
                state.receive_data(data)
                continue
            parts, fed = _take_chunks(state, data)
            if not parts:
                continue
            if not fed:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
                need_data = True
                continue
        elif isinstance(event, h11.Data):
            parts = [event.data]
        if parts:
            failure: RemoteProtocolError | None = None
            pending: Any = None
            while True:
                try:
                    following = state.next_event()
                except h11.RemoteProtocolError as exc:
                    failure = RemoteProtocolError(exc)
                    break
                if isinstance(following, h11.Data):
                    parts.append(following.data)
                    continue
                if following is not h11.NEED_DATA:
                    pending = following
                break
            yield bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
            if failure is not None:
                raise failure
            if pending is None:
                continue
            event = pending
        if isinstance(event, (h11.EndOfMessage, h11.PAUSED)):  # noqa: UP038
            break


def install() -> None:
    AsyncHTTP11Connection._receive_response_body = _receive_response_body  # type: ignore[method-assign]


def _http11_stream(response: httpx2.Response) -> HTTP11ConnectionByteStream | None:
    """The httpcore2 HTTP/1.1 byte stream under `response`, if it is httpx2's own stack."""
    layer: Any = response
    for attribute, kind in (
        ("stream", BoundAsyncStream),
        ("_stream", AsyncResponseStream),
        ("_httpcore_stream", PoolByteStream),
        ("_stream", HTTP11ConnectionByteStream),
    ):
        layer = getattr(layer, attribute, None)
        if type(layer) is not kind:
            return None
    return layer if type(layer._connection) is AsyncHTTP11Connection else None


async def raw_chunks(response: httpx2.Response) -> AsyncIterator[bytes]:
    """`response.aiter_raw()`: the same chunks, errors and closing, in fewer steps per chunk."""
    stream = _http11_stream(response)
    if stream is None:
        async for chunk in response.aiter_raw():
            yield chunk
        return
    if response.is_stream_consumed:
        raise httpx2.StreamConsumed()
    if response.is_closed:
        raise httpx2.StreamClosed()
    response.is_stream_consumed = True
    response._num_bytes_downloaded = 0
    request = stream._request
    try:
        with request_context(request=response._request), map_httpcore_exceptions():
            try:
                async with Trace("receive_response_body", logger, request, {"request": request}):
                    body = _receive_response_body(stream._connection, request)
                    async with aclosing(body):
                        async for chunk in body:
                            if chunk:
                                response._num_bytes_downloaded += len(chunk)
                                yield chunk
            except BaseException:
                with AsyncShieldCancellation():
                    await stream.aclose()
                raise
    finally:
        await response.aclose()
