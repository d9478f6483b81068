"""Request bodies: one reader for every route, with the framework rejections of api.md §1.5
(E-TEXT).

Every body is read through `body_chunks`, which enforces, while reading, for sized and chunked
bodies alike:
- a size limit per route family: 413 before a byte is read when `Content-Length` is too large,
  413 as soon as a chunked body passes the limit (a relay stops there, so the upstream never gets
  a complete request);
- one idle timeout between chunks (`REQUEST_BODY_IDLE_TIMEOUT_SECONDS`): a body that stalls
  gets 408 and the connection is closed.

`await read_json(Model)` enforces, in order: content type (415), size (413, 2 MiB), JSON syntax,
nesting depth and string contents (400), shape and types (422). Unknown fields are ignored.
Strings (keys included) with NUL or an unpaired surrogate are rejected with a 400 naming the
field: PostgreSQL stores neither, and nothing else privchat does needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import trio
from pydantic import BaseModel, ValidationError
from quart import request
from werkzeug.exceptions import RequestTimeout

from ..errors import TextError
from ..services.registry import services

MiB = 1024 * 1024
# Route families. Typed-JSON endpoints (settings, auth, admin): the reference's 2 MiB.
MAX_JSON_BYTES = 2 * MiB
# `/v1/responses` and the `/v1/conversations*` relays: chat text plus a few inline images.
MAX_CHAT_JSON_BYTES = 8 * MiB
# `/v1/files`: `MAX_UPLOAD_BYTES`.
MAX_JSON_DEPTH = 64

_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_SYNTAX = "Failed to parse the request body as JSON"

M = TypeVar("M", bound=BaseModel)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def too_large() -> TextError:
    return TextError(413, "Failed to buffer the request body: length limit exceeded")


async def body_chunks(limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, for relaying without buffering it (see the module doc)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large()
    idle = services().config.body_idle_timeout
    body = request.body
    size = 0
    while True:
        with trio.move_on_after(idle) as scope:
            try:
                chunk = await body.__anext__()
            except StopAsyncIteration:
                return
        if scope.cancelled_caught:
            raise RequestTimeout()
        size += len(chunk)
        if size > limit:
            raise too_large()
        yield chunk


async def read_bytes(limit: int = MAX_JSON_BYTES) -> bytes:
    """The whole body: one growing buffer, copied once into the bytes returned."""
    data = bytearray()
    async for chunk in body_chunks(limit):
        data += chunk
    return bytes(data)


def _check(document: Any) -> None:
    """Depth and string contents, walked without recursion; 400 names the first bad field."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            if _BAD_CHARACTER.search(value):
                raise _bad_string(where or "body")
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                field = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and _BAD_CHARACTER.search(key):
                    raise _bad_string(field)
                if isinstance(item, str | dict | list):
                    stack.append((item, field, depth + 1))


def _bad_string(field: str) -> TextError:
    shown = _BAD_CHARACTER.sub("?", field)[:200]
    return TextError(
        400,
        f"{_SYNTAX}: `{shown}` contains a NUL character or an unpaired surrogate",
    )


def _too_deep() -> TextError:
    return TextError(400, f"{_SYNTAX}: nested deeper than {MAX_JSON_DEPTH} levels")


class NotJson(TextError):
    """The body is not JSON at all (syntax or encoding)."""


def parse_json(raw: bytes) -> Any:
    """Parse and check a JSON document. Raises `NotJson` (400) for bad syntax and `TextError`
    (400) for nesting deeper than `MAX_JSON_DEPTH` or a bad string."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotJson(400, f"{_SYNTAX}: {type(exc).__name__}") from None
    _check(document)
    return document


async def read_json(model: type[M]) -> M:
    if not _is_json(request.headers.get("content-type")):
        raise TextError(415, "Expected request with `Content-Type: application/json`")
    data = parse_json(await read_bytes())
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "body"
        raise TextError(
            422, f"Failed to deserialize the JSON body into the target type: {where}: invalid value"
        ) from None
