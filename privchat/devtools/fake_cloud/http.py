"""Minimal ASGI plumbing: requests, replies, error envelopes, compression (spec §0.2-§0.4)."""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import brotli

from .sse import dumps

Headers = list[tuple[bytes, bytes]]
MIN_COMPRESS = 32


@dataclass
class Request:
    method: str
    path: str
    query: bytes
    headers: Headers
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """Last value of header ``name`` (case-insensitive), decoded as latin-1."""
        wanted = name.lower().encode("latin-1")
        found = None
        for key, value in self.headers:
            if key.lower() == wanted:
                found = value.decode("latin-1")
        return found

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query.decode("latin-1"), keep_blank_values=True))


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: Headers = field(default_factory=list)
    compressible: bool = True
    abort_after: int | None = None  # send this many body bytes, then drop the connection

    def header_list(self) -> Headers:
        out: Headers = []
        if self.content_type:
            out.append((b"content-type", self.content_type.encode("latin-1")))
        out.extend(self.headers)
        return out


class HttpError(Exception):
    """Raised by handlers to answer with ``reply``."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def json_reply(status: int, obj: Any, headers: Headers | None = None) -> Reply:
    return Reply(status, dumps(obj), headers=list(headers or []))


def envelope(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error(
    status: int,
    message: str,
    type_: str,
    param: str | None = None,
    *,
    no_retry: bool = False,
) -> HttpError:
    """The JSON error envelope; 429 gets ``retry-after``, ``no_retry`` adds x-should-retry."""
    headers: Headers = []
    if status == 429:
        headers.append((b"retry-after", b"1"))
    if no_retry:
        headers.append((b"x-should-retry", b"false"))
    return HttpError(json_reply(status, envelope(message, type_, param), headers))


def plain(status: int, text: str) -> HttpError:
    return HttpError(Reply(status, text.encode("utf-8"), "text/plain; charset=utf-8"))


def parse_json_body(req: Request) -> Any:
    """axum ``Json`` extractor semantics: plain-text 415 / 400 / (422 left to callers)."""
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json" and not (
        ctype.startswith("application/") and ctype.endswith("+json")
    ):
        raise plain(415, "Expected request with `Content-Type: application/json`")
    try:
        return json.loads(req.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise plain(400, f"Failed to parse the request body as JSON: {exc}") from exc


def unprocessable(detail: str) -> HttpError:
    return plain(422, f"Failed to deserialize the JSON body into the target type: {detail}")


def choose_encoding(accept: str | None) -> str | None:
    """Pick ``br`` or ``gzip`` from Accept-Encoding (highest q; br wins ties), else None."""
    if not accept:
        return None
    best: tuple[float, int, str] | None = None
    for token in accept.split(","):
        name, _, params = token.strip().partition(";")
        name = name.strip().lower()
        if name not in ("gzip", "br"):
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q <= 0:
            continue
        rank = (q, 1 if name == "br" else 0, name)
        if best is None or rank > best:
            best = rank
    return best[2] if best else None


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "br":
        return brotli.compress(body)
    return gzip.compress(body)


def request_id(req: Request) -> bytes:
    given = req.header("x-request-id")
    if given:
        try:
            uuid.UUID(given)
        except ValueError:
            pass
        else:
            return given.encode("latin-1")
    return str(uuid.uuid4()).encode("ascii")
