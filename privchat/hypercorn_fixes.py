"""Changes to Hypercorn 0.18's Trio server that privchat relies on; `install()` applies them.

When a client closes an idle keep-alive connection, Hypercorn reads the end of the stream and
stops reading, but its keep-alive timer keeps the connection's task group open: the socket stays
in CLOSE_WAIT, with two tasks, until `KEEP_ALIVE_TIMEOUT_SECONDS` (75 s) have passed. Clients
that open and close connections often (browsers, SDK clients, load balancer health checks) would
pile up sockets until the process runs out of file descriptors. Here the timer is stopped as
soon as the peer is gone, so the connection closes at once. Stopping it is harmless where
Hypercorn already closes the connection itself.

Cheaper writes: every write (one per relayed token event) takes Hypercorn's send lock and then
`trio.SocketStream.send_all`, each a checkpoint that yields to the scheduler. When the lock is
free and the socket takes the whole write at once (a streamed event always fits in the socket's
buffer unless the client stops reading), the bytes are written straight away, with no scheduling
round and without taking the lock (nothing could see it held); the request task still yields at
its next read. Otherwise (partial write, lock held, TLS)
Hypercorn's own path runs, shielded as before. A checkpoint every `YIELD_EVERY` direct writes
keeps a long run of writes without reads (a large buffered body) from holding the event loop.

Cheaper body chunks: for each `http.response.body` message Hypercorn checks the message against
every kind of ASGI message, makes a `Body` event, dispatches it by type, wraps it in an h11
`Data` event and runs it through h11's state machine and writer, which for a chunked response
in the `SEND_BODY` state changes no state and writes `b"%x\r\n" % len(data) + data + b"\r\n"`.
`_HTTPStream.app_send` takes a body message that is not the last one first and, when h11's writer
is chunked and its state is `SEND_BODY`, has `_H11Protocol.send_chunk` frame it (the same bytes
h11 would write) and `_TCPServer.write` write it, without the two frozen dataclass events
(`Body`, `RawData`) made per chunk on the way; `_H11Protocol.stream_send` frames `Body` events the
same way. Anything else takes Hypercorn's and h11's path.

Fewer layers per streamed chunk: Quart sends every chunk of a streamed body as an ASGI message
through the middleware's and Hypercorn's `send` chain (`MetricsMiddleware`, privchat's final-send
shield, Hypercorn's stream), none of which has anything to do for a chunk in the middle of a body.
`body_writer()` gives code in a request's task the stream's `send_body_chunk`, the same handling
as `app_send`'s for such a message, so the relay writes a chunk with one call instead of a
message dict, an async-generator hop and five coroutine levels (about 8 % of privchat's CPU per
relayed event at 50 streams, in paired runs against e9e34c0). The stream is found through a
context variable set while Hypercorn spawns the application's task, which inherits it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import h11
import hypercorn.protocol
import hypercorn.protocol.h11
import hypercorn.trio.run
import trio
from h11._writers import ChunkedWriter
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.events import Body, Request
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.utils import suppress_body

YIELD_EVERY = 16


class _TCPServer(TCPServer):
    _direct = 0  # writes made directly, for the periodic checkpoint

    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()  # nothing left to time out: let the connection close

    async def protocol_send(self, event: Event) -> None:
        if type(event) is RawData:
            await self.write(event.data)
        else:
            await super().protocol_send(event)

    async def write(self, data: bytes) -> None:
        """Send `data` as Hypercorn sends a `RawData` event, directly when the lock is free.

        A write the socket takes whole makes no checkpoint between taking the lock and
        releasing it, so no other task could see the lock held: it is not taken. Only a
        partial write (the rest is sent under the lock, shielded) or a failed one takes it.
        """
        if self.send_lock.locked() or not isinstance(self.stream, trio.SocketStream):
            await super().protocol_send(RawData(data=data))
            return
        try:
            sent = os.write(self.stream.socket.fileno(), data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = -1
        if sent == len(data):
            self._direct += 1
            if self._direct % YIELD_EVERY == 0:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return
        self.send_lock.acquire_nowait()
        try:
            if sent < 0:
                await self.protocol.handle(Closed())
                return
            try:
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(memoryview(data)[sent:])
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
        finally:
            self.send_lock.release()


class _HTTPStream(HTTPStream):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = getattr(self.send, "__self__", None)
        self._h11 = owner if isinstance(owner, _H11Protocol) else None

    async def handle(self, event: StreamEvent) -> None:
        if type(event) is not Request:
            await super().handle(event)
            return
        token = _STREAM.set(self)  # the application's task, spawned here, inherits it
        try:
            await super().handle(event)
        finally:
            _STREAM.reset(token)

    async def send_body_chunk(self, body: bytes) -> bool:
        """What Hypercorn does with `{"type": "http.response.body", "body": body, "more_body":
        True}`, done here when h11 would frame it as a chunk now; False, with nothing done,
        when Hypercorn's own path must take it."""
        if (
            self.state is not ASGIHTTPState.RESPONSE
            or self._h11 is None
            or not self._h11.frames_chunks()
        ):
            return False
        if body and not suppress_body(self.scope["method"], int(self.response["status"])):
            await self._h11.send_chunk(body)
        return True

    async def app_send(self, message: Any) -> None:
        if (
            message is not None
            and message["type"] == "http.response.body"
            and message.get("more_body", False)
            and await self.send_body_chunk(bytes(message.get("body", b"")))
        ):
            return
        await super().app_send(message)  # anything else: Hypercorn's own path


_STREAM: ContextVar[_HTTPStream | None] = ContextVar("privchat_http_stream", default=None)


def body_writer() -> Callable[[bytes], Awaitable[bool]] | None:
    """`send_body_chunk` of the HTTP/1.1 stream the current request's task serves, or None
    (another server or protocol); see the module docstring."""
    stream = _STREAM.get()
    return None if stream is None else stream.send_body_chunk


class _H11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = getattr(self.send, "__self__", None)
        self._tcp = owner if isinstance(owner, _TCPServer) else None

    def frames_chunks(self) -> bool:
        """h11 would frame a `Data` event now as a chunk, with no change of state."""
        connection = self.connection
        return (
            type(connection) is h11.Connection
            and connection.our_state is h11.SEND_BODY
            and type(connection._writer) is ChunkedWriter
        )

    async def stream_send(self, event: StreamEvent) -> None:
        if type(event) is Body and self.frames_chunks():
            if event.data:
                await self.send_chunk(event.data)
            return
        await super().stream_send(event)

    async def send_chunk(self, data: bytes) -> None:
        """h11's chunked framing of `data` (not empty), written as one piece."""
        framed = b"%x\r\n%b\r\n" % (len(data), data)
        if self._tcp is not None:
            await self._tcp.write(framed)
        else:
            await self.send(RawData(data=framed))


def install() -> None:
    """Make `hypercorn.trio.serve` use the fixed connection handler and HTTP/1.1 protocol
    (idempotent)."""
    hypercorn.trio.run.TCPServer = _TCPServer  # type: ignore[misc]
    hypercorn.protocol.H11Protocol = _H11Protocol  # type: ignore[misc]
    hypercorn.protocol.h11.HTTPStream = _HTTPStream  # type: ignore[misc]
