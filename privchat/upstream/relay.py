"""The one relay primitive: an upstream response becomes the client's response, byte for byte.

- `relay()` streams the raw, undecoded upstream bytes as they arrive (never re-framed, never
  buffered). It runs inside the request's task: when the client disconnects, quart-trio cancels
  the request nursery, which cancels the read and closes the upstream response at once. A guard
  task in that same nursery closes the upstream response even if the body was never started.
  When the upstream breaks mid-stream (drop, idle timeout) the client's body is aborted (the
  connection is closed without the terminating chunk), never ended cleanly.
- Each chunk is written with the server's `hypercorn_fixes.body_writer()` when it can take it
  (an HTTP/1.1 chunked body under way), else yielded to Quart: the same bytes either way.
- A `Watch` given to `relay()` sees the first chunks before the client does, until it says it is
  done (e.g. the response id is recorded); from then on the relay is pure pass-through.
- `buffered()` reads everything for tracked routes; `send_bytes()` relays exactly those bytes.
- `response_headers()`: every upstream header, repeated ones kept (D3), minus hop-by-hop ones.

Every response made here carries `Server-Timing: upstream;dur=<ms>, privchat;dur=<ms>`: the wait
for the upstream's response head, and privchat's own time before the head went out.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Protocol, TypeVar

import httpx2
import trio
from quart import Response, g, has_request_context, request
from quart.wrappers.response import ResponseBody

from ..hypercorn_fixes import body_writer
from .client import WAIT_KEY, UpstreamError, client_headers, get_upstream
from .httpcore_body import raw_chunks

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Not relayed because privchat sets its own: the server adds `date`; CORS is privchat's policy.
OWN_HEADERS = frozenset({"date", "server"})
CLOSE_TIMEOUT = 1.0
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

OnEnd = Callable[[str, int], None]  # (outcome "complete"|"aborted"|"cancelled", bytes relayed)


class Watch(Protocol):
    async def feed(self, chunk: bytes) -> bool:
        """Inspect a chunk before it is relayed; True when no further chunk is wanted."""

    async def end(self) -> None:
        """The body ended (completely) while the watch still wanted chunks."""


class UpstreamBroken(Exception):
    """The upstream body ended abnormally; raised into the server to abort the client body."""


def response_headers(upstream: httpx2.Response) -> list[tuple[str, str]]:
    """Upstream headers to relay: all values of repeated headers (D3), minus hop-by-hop."""
    hop = {
        token.strip().lower()
        for value in upstream.headers.get_list("connection")
        for token in value.split(",")
    }
    out = []
    for name, value in upstream.headers.multi_items():
        lowered = name.lower()
        if (
            lowered in HOP_BY_HOP
            or lowered in OWN_HEADERS
            or lowered in hop
            or lowered.startswith("access-control-")
        ):
            continue
        out.append((name, value))
    return out


async def forward(
    method: str, path: str, content: bytes | AsyncIterable[bytes] | None = None
) -> httpx2.Response:
    """Open `path` upstream on behalf of the current request: its query string (D1) and its
    headers under the header policy (D2). Raises `UpstreamError`."""
    return await get_upstream().open(
        method,
        path,
        query=request.query_string,
        headers=client_headers(request.headers),
        content=content,
    )


def timed(handler: F) -> F:
    """Decorate a proxying route (outermost, before the auth guard) so `Server-Timing` can
    count privchat's own time from the moment the handler started."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.proxy_started = time.perf_counter()
        return await handler(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def server_timing(upstream_seconds: float) -> str:
    own = 0.0
    started = g.get("proxy_started") if has_request_context() else None
    if started is not None:
        own = max(0.0, time.perf_counter() - started - upstream_seconds)
    return f"upstream;dur={upstream_seconds * 1000:.2f}, privchat;dur={own * 1000:.2f}"


def _wait(upstream: httpx2.Response) -> float:
    return float(upstream.extensions.get(WAIT_KEY, 0.0))


async def _close(upstream: httpx2.Response) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
        await upstream.aclose()


def _build(
    status: int, headers: Iterable[tuple[str, str]], body: Any, timing: str | None
) -> Response:
    pairs = list(headers)
    response = Response(body, status=status)
    response.headers.clear()
    for name, value in pairs:
        response.headers.add(name, value)
    if timing is not None:
        response.headers.add("Server-Timing", timing)
    return response


class _RelayBody(ResponseBody):
    """The streamed body. Quart enters it, iterates it and exits it within the request task."""

    def __init__(
        self, upstream: httpx2.Response, on_end: OnEnd | None, watch: Watch | None = None
    ) -> None:
        self.upstream = upstream
        self.on_end = on_end
        self.watch = watch
        self.sent = 0
        self.outcome = "cancelled"
        self.finished = trio.Event()

    async def __aenter__(self) -> _RelayBody:
        return self

    async def __aexit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.finish()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        write = body_writer()  # chunks the server takes directly are not yielded to Quart
        try:
            async for chunk in raw_chunks(self.upstream):
                if self.watch is not None and await self.watch.feed(chunk):
                    self.watch = None
                self.sent += len(chunk)
                if write is None or not await write(chunk):
                    yield chunk
            if self.watch is not None:
                await self.watch.end()
                self.watch = None
            self.outcome = "complete"
        except (httpx2.HTTPError, httpx2.StreamError, OSError) as exc:
            self.outcome = "aborted"
            log.warning(
                "upstream broke mid-stream; aborting the client body",
                extra={"error": type(exc).__name__, "bytes": self.sent},
            )
            raise UpstreamBroken(type(exc).__name__) from None
        finally:
            await self.finish()

    async def finish(self) -> None:
        if self.finished.is_set():
            return
        self.finished.set()
        await _close(self.upstream)
        if self.on_end is not None:
            try:
                self.on_end(self.outcome, self.sent)
            except Exception:
                log.exception("relay on_end callback failed")


async def _guard(body: _RelayBody) -> None:
    """Lives in the request's nursery: closes the upstream response if the request is
    cancelled before (or while) the body is relayed. Ends with the body."""
    try:
        await body.finished.wait()
    finally:
        if not body.finished.is_set():
            with trio.CancelScope(shield=True):
                await body.finish()


async def relay(
    upstream: httpx2.Response,
    *,
    extra_headers: Iterable[tuple[str, str]] = (),
    on_end: OnEnd | None = None,
    watch: Watch | None = None,
) -> Response:
    """The client's streamed response for `upstream` (status, headers, raw bytes).

    Call from the request handler that opened `upstream`; return the result directly.
    """
    body = _RelayBody(upstream, on_end, watch)
    nursery = trio.lowlevel.current_task().parent_nursery
    if nursery is not None:
        nursery.start_soon(_guard, body)
    response = _build(
        upstream.status_code,
        [*response_headers(upstream), *extra_headers],
        body,
        server_timing(_wait(upstream)),
    )
    response.timeout = None  # no Quart deadline on a stream (D8: only the idle timeout)
    return response


async def buffered(upstream: httpx2.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Read the whole raw (undecoded) body, close the response, and return what to relay:
    status, headers (with `Server-Timing`) and the exact bytes. Raises `UpstreamError`."""
    started = time.perf_counter()
    try:
        body = b"".join([chunk async for chunk in upstream.aiter_raw()])
    except httpx2.TimeoutException as exc:
        raise UpstreamError(504, f"upstream timed out ({type(exc).__name__})") from None
    except (httpx2.HTTPError, httpx2.StreamError, OSError) as exc:
        raise UpstreamError(502, f"Failed to read response body: {type(exc).__name__}") from None
    finally:
        await _close(upstream)
    headers = [
        (name, value)
        for name, value in response_headers(upstream)
        if name.lower() != "content-length"
    ]
    headers.append(("content-length", str(len(body))))
    wait = _wait(upstream) + time.perf_counter() - started
    headers.append(("server-timing", server_timing(wait)))
    return upstream.status_code, headers, body


async def send_bytes(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Response:
    """A response of exactly `body` with exactly `headers` (content-length made to match)."""
    pairs = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding")]
    response = _build(status, pairs, body, None)
    response.headers["content-length"] = str(len(body))
    return response
