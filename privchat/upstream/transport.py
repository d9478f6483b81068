"""The upstream transport: httpx2's own, over connections that send a request in one write.

httpcore2 writes a request's head and its body separately, and then an empty write for the end
of a sized body. Each write is a system call, a Trio scheduling round and, when the peer is
idle, a wake-up of the peer for half a request. `CoalescingStream` holds the first write after
each response (a request's head) until the next non-empty write or the first read, and sends
them together; empty writes are skipped. Large bodies and streamed uploads go out as before,
after the head: nothing is held longer than the request takes to write.
"""

# The `timeout` parameters are httpcore2's network-stream interface, implemented here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

JOIN_LIMIT = 64 * 1024  # a held head is sent together with at most this much body


class CoalescingStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held = b""
        self._fresh = True  # nothing written since the last read: the next write is a head

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._fresh:
            self._fresh = False
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
        return await self._stream.read(max_bytes, timeout)

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
    built over `CoalescingBackend`."""

    def __init__(self, limits: httpx2.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CoalescingBackend(),
        )
