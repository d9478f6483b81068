"""A fix to Hypercorn 0.18's Trio server that privchat relies on; `install()` applies it.

When a client closes an idle keep-alive connection, Hypercorn reads the end of the stream and
stops reading, but its keep-alive timer keeps the connection's task group open: the socket stays
in CLOSE_WAIT, with two tasks, until `KEEP_ALIVE_TIMEOUT_SECONDS` (75 s) have passed. Clients
that open and close connections often (browsers, SDK clients, load balancer health checks) would
pile up sockets until the process runs out of file descriptors. Here the timer is stopped as
soon as the peer is gone, so the connection closes at once. Stopping it is harmless where
Hypercorn already closes the connection itself.
"""

from __future__ import annotations

import hypercorn.trio.run
from hypercorn.trio.tcp_server import TCPServer


class _TCPServer(TCPServer):
    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()  # nothing left to time out: let the connection close


def install() -> None:
    """Make `hypercorn.trio.serve` use the fixed connection handler (idempotent)."""
    hypercorn.trio.run.TCPServer = _TCPServer  # type: ignore[misc]
