"""Request bodies: typed JSON with the framework rejections of api.md §1.5 (E-TEXT), bounded
bytes, and the raw stream for relaying.

`await read_json(Model)` enforces, in order: content type (415), size (413, 2 MiB), JSON syntax
(400), shape and types (422). Unknown fields are ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import TypeVar

import trio
from pydantic import BaseModel, ValidationError
from quart import request
from werkzeug.exceptions import RequestTimeout

from ..errors import TextError

MAX_JSON_BYTES = 2 * 1024 * 1024

M = TypeVar("M", bound=BaseModel)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


async def read_bytes(limit: int = MAX_JSON_BYTES) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise TextError(413, "Failed to buffer the request body: length limit exceeded")
    chunks: list[bytes] = []
    size = 0
    timeout = request.body_timeout if request.body_timeout is not None else math.inf
    with trio.move_on_after(timeout):
        async for chunk in request.body:
            size += len(chunk)
            if size > limit:
                raise TextError(413, "Failed to buffer the request body: length limit exceeded")
            chunks.append(chunk)
        return b"".join(chunks)
    raise RequestTimeout()


async def streamed_body() -> AsyncIterator[bytes]:
    """The request body as it arrives, for relaying upstream without buffering it."""
    async for chunk in request.body:
        yield chunk


async def read_json(model: type[M]) -> M:
    if not _is_json(request.headers.get("content-type")):
        raise TextError(415, "Expected request with `Content-Type: application/json`")
    raw = await read_bytes()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TextError(
            400, f"Failed to parse the request body as JSON: {type(exc).__name__}"
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "body"
        raise TextError(
            422, f"Failed to deserialize the JSON body into the target type: {where}: invalid value"
        ) from None
