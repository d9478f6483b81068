"""An adaptation of httpcore2's HTTP/1.1 connection: body bytes already received leave together.

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
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import h11
from httpcore2._async.http11 import AsyncHTTP11Connection
from httpcore2._exceptions import RemoteProtocolError


async def _receive_response_body(self: Any, request: Any) -> AsyncGenerator[bytes]:
    timeout = request.extensions.get("timeout", {}).get("read", None)
    state = self._h11_state
    stream = self._network_stream
    size = self.READ_NUM_BYTES
    while True:
        # httpcore2's `_receive_event`, inlined: its `map_exceptions` context manager per call
        # (two calls per event) cost more than the rest of it.
        try:
            event = state.next_event()
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(exc) from exc
        if event is h11.NEED_DATA:
            data = await stream.read(size, timeout=timeout)
            if data == b"" and state.their_state == h11.SEND_RESPONSE:
                raise RemoteProtocolError("Server disconnected without sending a response.")
            state.receive_data(data)
            continue
        if isinstance(event, h11.Data):
            parts = [event.data]
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
            if pending is not None:
                event = pending
            else:
                continue
        if isinstance(event, (h11.EndOfMessage, h11.PAUSED)):  # noqa: UP038
            break


def install() -> None:
    AsyncHTTP11Connection._receive_response_body = _receive_response_body  # type: ignore[method-assign]
