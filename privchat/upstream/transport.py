"""The upstream transport: httpx2's own, over connections that send a request in one write.

httpcore2 writes a request's head and its body separately, and then an empty write for the end
of a sized body. Each write is a system call, a Trio scheduling round and, when the peer is
idle, a wake-up of the peer for half a request. `CoalescingStream` holds the first write after
each response (a request's head) until the next non-empty write or the first read, and sends
them together; empty writes are skipped. Large bodies and streamed uploads go out as before,
after the head: nothing is held longer than the request takes to write.

Reads of a plain (non-TLS) connection skip a layer too: httpcore2's Trio stream reads through
`trio.SocketStream.receive_some`, which after waking for readable data yields to the scheduler a
second time, and wraps each read in two context managers. A streamed response reads once per
token event, so `CoalescingStream.read` waits for the socket itself and reads the bytes at once:
one scheduling round per read instead of two, same errors (`ReadTimeout` after the idle timeout,
`ReadError` for a closed or broken socket). The idle timeout is a deadline noted in
`read_deadlines`, not a cancel scope per read. A read tries the socket before waiting only when
the previous read filled its buffer (more may be waiting); after a short read, which is every
read of a token stream, that attempt would almost always fail, so it waits for the socket at
once (data that did arrive meanwhile is reported by the next `epoll`, the same one scheduling
round as the checkpoint after a successful attempt).
"""

# The `timeout` parameters are httpcore2's network-stream interface, implemented here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import contextlib
import math
import os
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
import trio

from . import httpcore_body, read_deadlines

JOIN_LIMIT = 64 * 1024  # a held head is sent together with at most this much body


class CoalescingStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held = b""
        self._fresh = True  # nothing written since the last read: the next write is a head
        # The socket to read directly: a plain connection's (TLS decrypts in the stream).
        self._socket = None
        if stream.get_extra_info("ssl_object") is None:
            self._socket = stream.get_extra_info("socket")
        # The last read took all the socket held (or a request was just written): the next
        # read waits for the socket at once instead of first failing a read (`_read_socket`).
        self._drained = True
        self._expired = False  # the idle timeout woke the waiting read

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._fresh:
            self._fresh = False
            self._drained = True
            self._held = bytes(buffer)
            return
        if self._held:
            held, self._held = self._held, b""
            if len(buffer) <= JOIN_LIMIT:
                buffer = held + buffer
            else:
                await self._stream.write(held, timeout)
        await self._stream.write(buffer, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            held, self._held = self._held, b""
            await self._stream.write(held, timeout)
        self._fresh = True
        if self._socket is None:
            return await self._stream.read(max_bytes, timeout)
        return await self._read_socket(max_bytes, math.inf if timeout is None else timeout)

    async def _read_socket(self, max_bytes: int, timeout: float) -> bytes:
        fd = self._socket.fileno()
        try:
            if not self._drained:
                try:
                    data = os.read(fd, max_bytes)
                except BlockingIOError:
                    pass
                else:
                    self._drained = len(data) < max_bytes
                    await trio.lowlevel.checkpoint()
                    return data
            self._expired = False
            deadlines = None
            if timeout != math.inf:
                deadlines = read_deadlines.current()
                deadlines.add(self, trio.current_time() + timeout)
            try:
                while True:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        data = os.read(fd, max_bytes)
                    except BlockingIOError:
                        continue  # woken without data: wait again
                    self._drained = len(data) < max_bytes
                    return data
            finally:
                if deadlines is not None:
                    deadlines.discard(self)
        except trio.ClosedResourceError as exc:
            if self._expired:
                raise httpcore2.ReadTimeout("timed out") from None
            raise httpcore2.ReadError(str(exc) or type(exc).__name__) from exc
        except (OSError, trio.BrokenResourceError) as exc:
            raise httpcore2.ReadError(str(exc) or type(exc).__name__) from exc

    def expire(self) -> None:
        """The idle timeout passed while `_read_socket` waited (`read_deadlines`)."""
        self._expired = True
        with contextlib.suppress(Exception):
            trio.lowlevel.notify_closing(self._socket)

    async def aclose(self) -> None:
        self._held = b""
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return CoalescingStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class CoalescingBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, backend: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self._backend = backend or httpcore2.TrioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return CoalescingStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        return CoalescingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class UpstreamTransport(httpx2.AsyncHTTPTransport):
    """httpx2's HTTP transport (request/response mapping, errors), with its connection pool
    built over `CoalescingBackend`, and httpcore2's body reads batched (`httpcore_body`)."""

    def __init__(self, limits: httpx2.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        httpcore_body.install()  # body bytes already received leave in one chunk
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CoalescingBackend(),
        )
