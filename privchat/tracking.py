"""Tracked upstream responses: read a decoded copy, record ownership, leave the bytes alone.

api.md §1.8 "Tracked responses", D4: the upstream body is buffered as received; a decoded copy
(gzip, br, zstd) is parsed to find the new object's `id`; the client then gets the original
bytes and headers. Only 2xx JSON objects with a string `id` have any effect.

The ownership row is committed here, before the caller answers, so the client can use the id at
once. The activity row goes through the batched writer. Nothing here logs bodies, titles,
metadata or file names.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import trio
from quart import Response, g

from .errors import ProxyError, json_response
from .services.registry import services
from .store import conversations, files
from .upstream import UpstreamError, buffered, decode, get_upstream, send_bytes

log = logging.getLogger(__name__)

COMPENSATE_SECONDS = 5.0

Recorder = Callable[[uuid.UUID, dict[str, Any]], Awaitable[Any]]
Owns = Callable[[Any, str, uuid.UUID], Awaitable[bool]]


class TrackingFailed(Exception):
    """The ownership row could not be written (database error, or an id owned by another user)."""

    def __init__(self, object_id: str, reason: str) -> None:
        super().__init__(reason)
        self.object_id = object_id
        self.reason = reason


def inspect(status: int, headers: list[tuple[str, str]], body: bytes) -> dict[str, Any] | None:
    """The JSON object of a 2xx tracked response with a string `id`, else None."""
    if not 200 <= status < 300:
        return None
    try:
        encoding = ", ".join(v for n, v in headers if n.lower() == "content-encoding")
        obj = json.loads(decode.decoded(body, encoding or None))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None
    return obj


async def conversation_created(user_id: uuid.UUID, obj: dict[str, Any]) -> str:
    """A new conversation (create or clone): own it, count it, log the activity."""
    svc = services()
    conversation_id: str = obj["id"]
    try:
        owned = await conversations.track(svc.db, conversation_id, user_id)
    except Exception as exc:
        log.error("conversation tracking failed", extra={"error": type(exc).__name__})
        raise TrackingFailed(conversation_id, "Database error") from None
    if not owned:
        log.error("upstream returned a conversation id that cannot be owned")
        raise TrackingFailed(conversation_id, "conversation id already in use")
    svc.metrics.event("conversation.created")
    svc.activity.record(user_id, "conversation", metadata={"conversation_id": conversation_id})
    return conversation_id


async def conversation_updated(user_id: uuid.UUID, conversation_id: str) -> None:
    """An update of an owned conversation bumps `updated_at` (list order); never fails the call."""
    try:
        await conversations.track(services().db, conversation_id, user_id)
    except Exception as exc:
        log.warning("conversation touch failed", extra={"error": type(exc).__name__})


async def file_uploaded(user_id: uuid.UUID, obj: dict[str, Any]) -> str | None:
    """A new file: own it, count it, log the activity.

    Returns None when the upstream object lacks a required field (then, as in the reference,
    the client still gets its 2xx but the file is not tracked).
    """
    svc = services()
    record = files.FileRecord.from_upstream(obj)
    if record is None:
        log.warning("uploaded file object not trackable")
        return None
    try:
        owned = await files.track(svc.db, record, user_id)
    except Exception as exc:
        log.error("file tracking failed", extra={"error": type(exc).__name__})
        raise TrackingFailed(record.id, "Database error") from None
    if not owned:
        log.error("upstream returned a file id that cannot be owned")
        raise TrackingFailed(record.id, "file id already in use")
    svc.metrics.event("file.uploaded")
    svc.activity.record(user_id, "file_upload", metadata={"file_id": record.id})
    return record.id


async def answer_tracked(
    upstream: httpx2.Response, record: Recorder, *, kind: str, path_of: Callable[[str], str]
) -> Response:
    """Relay a tracked upstream answer (create, clone, upload) after recording its object.

    When the ownership row cannot be written the new upstream object is deleted again (it
    would be unreachable for everyone) and the client gets 500; an id that another user owns
    gets 502. Otherwise the client gets the upstream's exact status, headers and bytes.
    """
    status, headers, data = await buffered(upstream)
    obj = inspect(status, headers, data)
    if obj is not None:
        try:
            await record(g.user_id, obj)
        except TrackingFailed as exc:
            if exc.reason == "Database error":
                await _discard(path_of(exc.object_id), kind)
                raise ProxyError(500, f"Failed to track {kind}: Database error") from None
            raise ProxyError(502, f"OpenAI API error: {exc.reason}") from None
    return await send_bytes(status, headers, data)


async def _discard(path: str, kind: str) -> None:
    """Compensation: an object whose row could not be written must not linger upstream."""
    with trio.move_on_after(COMPENSATE_SECONDS):
        try:
            response = await get_upstream().call("DELETE", path)
            log.info(
                "untracked object discarded", extra={"kind": kind, "status": response.status_code}
            )
        except UpstreamError:
            log.warning("untracked object could not be discarded", extra={"kind": kind})


async def check_owned(owns: Owns, object_id: str, *, kind: str, missing: ProxyError) -> None:
    """404 (`missing`) unless the caller owns `object_id`: unknown and foreign ids look alike."""
    try:
        owned = await owns(services().db, object_id, g.user_id)
    except Exception as exc:
        log.error("access check failed", extra={"kind": kind, "error": type(exc).__name__})
        raise ProxyError(500, f"Failed to get {kind}: Database error") from None
    if not owned:
        raise missing


def upstream_json(data: bytes) -> Any:
    """An internal call's JSON answer, or 502 when the upstream sent something else."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProxyError(502, f"OpenAI API error: Failed to parse JSON: {exc}") from None


async def delete_tracked(
    path: str, forget: Callable[[], Awaitable[bool]], *, kind: str, missing: ProxyError
) -> Response:
    """Delete an owned object upstream, then its ownership row.

    An object already gone upstream (404) loses its stale row and answers `missing` (C3);
    any other non-200 is a 502 and the row stays.
    """
    response = await get_upstream().call("DELETE", path)
    gone = response.status_code == 404
    if response.status_code != 200 and not gone:
        raise ProxyError(
            502, f"OpenAI API error: OpenAI API returned status {response.status_code}"
        )
    body = None if gone else upstream_json(response.content)
    try:
        deleted = await forget()
    except Exception as exc:
        log.error("ownership delete failed", extra={"kind": kind, "error": type(exc).__name__})
        raise ProxyError(500, f"Failed to delete {kind}: Database error") from None
    if gone or not deleted:
        raise missing
    return json_response(body)
