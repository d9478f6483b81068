"""The one upstream client: a pooled `httpx2.AsyncClient` aimed at `OPENAI_BASE_URL`.

- `Upstream.open()` sends a request for a proxying route and returns as soon as the status and
  headers arrived; the body is left unread (`stream=True`) for `relay.relay` / `relay.buffered`.
- `Upstream.call()` is for internal calls (no client headers; the body is read).
- The API key comes from a `KeySource` (`StaticKey` now; the VPC source plugs in later).
- Timeouts (D8): connect `UPSTREAM_CONNECT_TIMEOUT_SECONDS`; idle read/write
  `UPSTREAM_IDLE_TIMEOUT_SECONDS` between bytes; no total deadline on a stream.
- Request headers (D2): `client_headers()` drops credentials, hop-by-hop and origin-revealing
  headers, and forwards the rest unchanged.

Failures raise `UpstreamError`: 504 for a timeout, 502 for any other transport failure.
Nothing here logs bodies, keys or tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, Protocol

import httpx2
import trio

from ..config import Config
from ..errors import json_response
from .transport import UpstreamTransport

if TYPE_CHECKING:
    from ..services.registry import Services

log = logging.getLogger(__name__)

# D2: never forwarded upstream.
DROPPED_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "host",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "origin",
        "referer",
        "forwarded",
    }
)
# Seconds from sending the request to its response head, kept on `response.extensions`.
WAIT_KEY = "privchat.upstream_wait"


def _dropped(name: str) -> bool:
    return (
        name in DROPPED_REQUEST_HEADERS
        or name.startswith("proxy-")
        or name.startswith("x-forwarded-")
    )


def client_headers(request_headers: Any) -> list[tuple[str, str]]:
    """The client's headers to forward upstream (D2), every value of repeated ones kept.

    `request_headers` is a werkzeug/quart `Headers`, an `httpx2.Headers`, or pairs.
    Headers named by the client's `Connection` header are dropped too (hop-by-hop).
    """
    if hasattr(request_headers, "multi_items"):
        pairs = list(request_headers.multi_items())
    elif hasattr(request_headers, "items") and not isinstance(request_headers, list | tuple):
        try:
            pairs = list(request_headers.items(multi=True))
        except TypeError:
            pairs = list(request_headers.items())
    else:
        pairs = list(request_headers)
    hop = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [
        (name, value)
        for name, value in pairs
        if not _dropped(name.lower()) and name.lower() not in hop
    ]


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer in time (502 / 504)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Any:
        """The E-PROXY response: `{"error": "OpenAI API error: API error: ..."}`."""
        return json_response({"error": f"OpenAI API error: API error: {self.message}"}, self.status)


class KeySource(Protocol):
    """Where the upstream API key comes from. The VPC source implements the same two methods."""

    async def key(self) -> str: ...

    def invalidate(self) -> None: ...


class StaticKey:
    """`OPENAI_API_KEY_FILE` / `OPENAI_API_KEY` (already resolved by the config)."""

    def __init__(self, key: str) -> None:
        self._key = key

    async def key(self) -> str:
        return self._key

    def invalidate(self) -> None:
        """A static key cannot be refreshed."""

    def __repr__(self) -> str:
        return "StaticKey(<redacted>)"


def _no_cookies() -> httpx2.Cookies:
    # Upstream Set-Cookie must never be stored and replayed for other users.
    return httpx2.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Upstream:
    """The pooled client. Create it once per process with `Upstream.from_config` (an async
    context manager), or directly for tests; `aclose()` closes the pool."""

    def __init__(
        self,
        base_url: str,
        key_source: KeySource,
        *,
        connect_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        max_connections: int | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        # The base is joined verbatim: "{base}/{path}" (api.md §1.8).
        self.base_url = base_url
        self.key_source = key_source
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        limits = httpx2.Limits(
            max_connections=max_connections, max_keepalive_connections=64, keepalive_expiry=30
        )
        self.client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(
                connect=connect_timeout, read=idle_timeout, write=idle_timeout, pool=connect_timeout
            ),
            follow_redirects=False,
            cookies=_no_cookies(),
            transport=transport or UpstreamTransport(limits),
            trust_env=False,
        )
        # No default Accept-Encoding/User-Agent of our own: the client's are forwarded as sent,
        # so upstream compresses only when the client asked for it.
        self.client.headers.clear()

    @classmethod
    def from_config(cls, config: Config, key_source: KeySource | None = None) -> Upstream:
        return cls(
            config.openai_base_url,
            key_source or StaticKey(config.openai_api_key),
            connect_timeout=config.upstream_connect_timeout,
            idle_timeout=config.upstream_idle_timeout,
        )

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.client.aclose()

    def url(self, path: str, query: bytes = b"") -> str:
        url = f"{self.base_url}/{path.lstrip('/')}"
        if query:
            url += "?" + query.decode("latin-1")
        return url

    async def _authorization(self) -> str:
        try:
            key = await self.key_source.key()
        except Exception as exc:
            log.warning("upstream key unavailable", extra={"error": type(exc).__name__})
            raise UpstreamError(502, "Failed to get API key") from None
        return f"Bearer {key}"

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: bytes = b"",
        headers: Iterable[tuple[str, str]] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
    ) -> httpx2.Response:
        """Send the request; return once status and headers arrived (body unread).

        The caller owns the returned response and must close it (`relay`/`buffered` do).
        `headers` are forwarded as given (use `client_headers()`); framing headers are made to
        match `content`: for bytes the length is recomputed, for no body the body headers are
        removed, for a stream a given `content-length` is kept (else chunked).
        Raises `UpstreamError` (504 on timeout, 502 otherwise).
        """
        streamed = content is not None and not isinstance(content, bytes | bytearray)
        out: list[tuple[str, str]] = []
        for name, value in headers or ():
            lowered = name.lower()
            if lowered in ("authorization", "host", "transfer-encoding"):
                continue
            if lowered == "content-length" and not streamed:
                continue  # recomputed from the bytes, or no body
            if lowered == "content-type" and content is None:
                continue
            out.append((name, value))
        out.append(("authorization", await self._authorization()))
        request = self.client.build_request(
            method, self.url(path, query), headers=out, content=content
        )
        return await self._send(request, stream=True)

    async def call(
        self, method: str, path: str, *, json: object = None, query: bytes = b""
    ) -> httpx2.Response:
        """An internal call: only `Authorization` (+ JSON content type); the body is read."""
        headers = [("authorization", await self._authorization())]
        request = self.client.build_request(
            method, self.url(path, query), headers=headers, json=json
        )
        return await self._send(request, stream=False)

    async def _send(self, request: httpx2.Request, *, stream: bool) -> httpx2.Response:
        started = time.perf_counter()
        try:
            response = await self.client.send(request, stream=stream)
            response.extensions = {**response.extensions, WAIT_KEY: time.perf_counter() - started}
            return response
        except httpx2.TimeoutException as exc:
            log.warning(
                "upstream timeout", extra={"path": request.url.path, "error": type(exc).__name__}
            )
            raise UpstreamError(504, f"upstream timed out ({type(exc).__name__})") from None
        except (httpx2.HTTPError, httpx2.StreamError, OSError) as exc:
            log.warning(
                "upstream unreachable",
                extra={"path": request.url.path, "error": type(exc).__name__},
            )
            raise UpstreamError(502, _error_text(exc)) from None


def get_upstream() -> Upstream:
    """The process's `Upstream`, registered by `open_upstream`."""
    from ..services.registry import opened, services

    return opened(services().upstream, "upstream")


@asynccontextmanager
async def open_upstream(svc: Services, nursery: trio.Nursery) -> AsyncIterator[None]:
    """Feature opener: the one pooled client, registered as `svc.upstream`."""
    upstream = Upstream.from_config(svc.config, svc.upstream_key_source)
    svc.upstream = upstream
    try:
        yield
    finally:
        svc.upstream = None
        await upstream.aclose()
