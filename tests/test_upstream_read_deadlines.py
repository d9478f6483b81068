"""The idle timeout of direct upstream reads (`read_deadlines`), without a cancel scope per read."""

from __future__ import annotations

import socket

import httpcore2
import pytest
import trio
from httpcore2._backends.trio import TrioStream

from privchat.upstream.transport import CoalescingStream


def _pair() -> tuple[CoalescingStream, socket.socket]:
    ours, theirs = socket.socketpair()
    stream = CoalescingStream(TrioStream(trio.SocketStream(trio.socket.from_stdlib_socket(ours))))
    return stream, theirs


async def test_a_read_that_gets_data_in_time_never_times_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Each read's deadline starts with its own wait: reads 0.6 s apart under a 1 s timeout
    all succeed, though the stream as a whole lasts far longer than 1 s."""
    stream, peer = _pair()

    async def send() -> None:
        for i in range(5):
            await trio.sleep(0.6)
            peer.send(b"%d" % i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        got = [await stream.read(65536, timeout=1.0) for _ in range(5)]
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    peer.close()
    await stream.aclose()


async def test_each_wait_times_out_at_its_own_deadline(autojump_clock: trio.abc.Clock) -> None:
    """A shorter timeout noted after a longer one wakes at its own deadline; the longer wait
    is untouched and still gets its data; a stream that timed out can be read again."""
    slow, slow_peer = _pair()
    fast, fast_peer = _pair()
    ended: dict[str, float] = {}

    async def long_wait() -> None:
        assert await slow.read(65536, timeout=10.0) == b"late"
        ended["slow"] = trio.current_time()

    async def short_wait() -> None:
        await trio.sleep(0.1)
        with pytest.raises(httpcore2.ReadTimeout):
            await fast.read(65536, timeout=1.0)
        ended["fast"] = trio.current_time()
        slow_peer.send(b"late")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_wait)
        nursery.start_soon(short_wait)
    assert ended["fast"] == pytest.approx(1.1)
    assert ended["slow"] == pytest.approx(1.1)
    fast_peer.send(b"again")
    assert await fast.read(65536, timeout=1.0) == b"again"
    fast_peer.close()
    assert await fast.read(65536, timeout=1.0) == b""
    for stream, peer in ((slow, slow_peer), (fast, fast_peer)):
        peer.close()
        await stream.aclose()


async def test_a_closed_socket_is_a_read_error_not_a_timeout() -> None:
    stream, peer = _pair()

    async def close_soon() -> None:
        await trio.lowlevel.checkpoint()
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(httpcore2.ReadError):
            await stream.read(65536, timeout=5.0)
    peer.close()
