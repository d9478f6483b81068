"""The body loop's own chunk parsing (`httpcore_body._take_chunks`) against h11's, read by read."""

from __future__ import annotations

import random
from typing import Any

import h11
import pytest
from httpcore2._exceptions import RemoteProtocolError

from privchat.upstream.httpcore_body import _receive_response_body

HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


class _Reads:
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = list(reads)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return self.reads.pop(0) if self.reads else b""


class _Connection:
    READ_NUM_BYTES = 65536

    def __init__(self, reads: list[bytes]) -> None:
        self._h11_state = h11.Connection(h11.CLIENT)
        self._h11_state.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        self._h11_state.send(h11.EndOfMessage())
        self._h11_state.receive_data(HEAD)
        assert isinstance(self._h11_state.next_event(), h11.Response)
        self._network_stream = _Reads(reads)


class _Request:
    extensions: dict[str, Any] = {}


async def _ours(reads: list[bytes]) -> tuple[list[bytes], bool, Any]:
    connection = _Connection(reads)
    chunks: list[bytes] = []
    try:
        async for chunk in _receive_response_body(connection, _Request()):
            chunks.append(chunk)
    except RemoteProtocolError:
        return chunks, True, connection._h11_state.their_state
    return chunks, False, connection._h11_state.their_state


def _h11s(reads: list[bytes]) -> tuple[bytes, bool, Any]:
    """h11 alone, as httpcore2 reads a body: every Data event, until the end or an error."""
    state = _Connection([])._h11_state
    body = b""
    pending = list(reads) + [b""]
    try:
        while True:
            event = state.next_event()
            if event is h11.NEED_DATA:
                state.receive_data(pending.pop(0))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return body, False, state.their_state
    except h11.RemoteProtocolError:
        return body, True, state.their_state


def _chunk(data: bytes, head: bytes | None = None) -> bytes:
    return (head if head is not None else b"%x" % len(data)) + b"\r\n" + data + b"\r\n"


BODIES = {
    "events": b"".join(_chunk(b"data: %d\n\n" % i * (i % 7 + 1)) for i in range(40)) + b"0\r\n\r\n",
    "trailer": _chunk(b"abc") + b"0\r\nx-t: 1\r\n\r\n",
    "extension and upper case": _chunk(b"x" * 26, b"1A;name=v")
    + _chunk(b"y" * 171, b"AB")
    + b"0\r\n\r\n",
    "bad size": _chunk(b"ok") + b"zz\r\nno\r\n0\r\n\r\n",
    "bad footer": _chunk(b"ok") + b"2\r\nnoXX0\r\n\r\n",
    "cut short": _chunk(b"ok") + b"5\r\nab",
    "big chunk": _chunk(bytes(range(256)) * 300) + b"0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BODIES))
async def test_same_bytes_and_errors_as_h11_however_the_reads_fall(name: str) -> None:
    body = BODIES[name]
    rng = random.Random(name)
    splits = [[body], [body[i : i + 1] for i in range(len(body))]]
    for _ in range(150):
        cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 12))))
        splits.append([body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)])
    for reads in splits:
        chunks, failed, state = await _ours(reads)
        expected, expected_failed, expected_state = _h11s(reads)
        assert (b"".join(chunks), failed, state) == (expected, expected_failed, expected_state)
        assert all(chunks)  # never an empty chunk


async def test_a_read_of_whole_events_is_one_chunk_and_h11_is_not_asked_again() -> None:
    events = [_chunk(b"data: %d\n\n" % i) for i in range(3)]
    reads = [b"".join(events[:2]), events[2], b"0\r\n\r\n"]
    chunks, failed, _ = await _ours(reads)
    assert chunks == [b"data: 0\n\ndata: 1\n\n", b"data: 2\n\n"]
    assert not failed
