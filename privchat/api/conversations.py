"""`/v1/conversations*` (api.md §2.5): ownership in PostgreSQL, everything else upstream.

Every per-conversation route first checks that the caller owns the id; an unknown, foreign or
malformed id is 404 `{"error": "Conversation not found"}` and nothing is sent upstream.
Pass-through routes forward the client's headers (D2) and raw query string (D1) and relay the
upstream bytes. Create and clone are tracked: the new id is owned before the client hears of it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import trio
from quart import Blueprint, Response, g, request
from quart_schema import document_request, document_response

from ..auth.guards import require_session
from ..errors import ProxyError, json_response, not_found
from ..services.registry import services
from ..store import conversations
from ..tracking import (
    answer_tracked,
    check_owned,
    conversation_created,
    conversation_updated,
    delete_tracked,
    inspect,
    upstream_json,
)
from ..upstream import (
    UpstreamError,
    buffered,
    forward,
    get_upstream,
    relay,
    send_bytes,
)
from . import schemas
from .body import MAX_CHAT_JSON_BYTES, body_chunks

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger(__name__)

bp = Blueprint("conversations", __name__)

BATCH_SIZE = 1000  # the upstream batch endpoint's limit


@bp.errorhandler(UpstreamError)
async def _upstream_error(error: UpstreamError) -> Response:
    return error.response()  # type: ignore[no-any-return]


def _path(conversation_id: str, suffix: str = "") -> str:
    return f"conversations/{quote(conversation_id, safe='')}{suffix}"


async def _check_access(conversation_id: str) -> None:
    await check_owned(conversations.owns, conversation_id, kind="conversation", missing=not_found())


async def _forward(method: str, path: str, *, body: bool) -> httpx2.Response:
    return await forward(method, path, body_chunks(MAX_CHAT_JSON_BYTES) if body else None)


async def _tracked_create(method: str, path: str, *, body: bool) -> Response:
    upstream = await _forward(method, path, body=body)
    return await answer_tracked(upstream, conversation_created, kind="conversation", path_of=_path)


@bp.post("/v1/conversations")
@document_request(schemas.ConversationCreate)
@document_response(schemas.Conversation)
@require_session
async def create() -> Response:
    """Create a conversation (optionally with its first items)."""
    return await _tracked_create("POST", "conversations", body=True)


class _ListFailed(Exception):
    def __init__(self, status: int, inner: str) -> None:
        super().__init__(inner)
        self.status = status
        self.inner = inner


async def _batch(chunk: list[str]) -> list[Any]:
    try:
        response = await get_upstream().call("POST", "conversations/batch", json={"ids": chunk})
    except UpstreamError as exc:
        raise _ListFailed(exc.status, f"OpenAI API error: API error: {exc.message}") from None
    if response.status_code != 200:
        raise _ListFailed(
            502, f"OpenAI API error: OpenAI batch API returned status {response.status_code}"
        )
    try:
        body = json.loads(response.content)
        data, missing = body["data"], body["missing_ids"]
        if not isinstance(data, list) or not isinstance(missing, list):
            raise TypeError("data and missing_ids must be arrays")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise _ListFailed(
            502, f"OpenAI API error: Failed to parse JSON: {type(exc).__name__}"
        ) from None
    if missing:
        # Gone upstream (deleted elsewhere, expired): not shown, rows kept (see deviation C3).
        log.info("conversations missing upstream", extra={"missing": len(missing)})
    return data


@bp.get("/v1/conversations")
@document_response(list[schemas.Conversation])
@require_session
async def list_conversations() -> Response:
    """Your conversations, most recently updated first (a JSON array)."""
    try:
        ids = await conversations.list_ids(services().db, g.user_id)
    except Exception as exc:
        log.error("conversation list query failed", extra={"error": type(exc).__name__})
        raise ProxyError(500, "Failed to list conversations: Database error") from None
    if not ids:
        return json_response([])
    chunks = [ids[start : start + BATCH_SIZE] for start in range(0, len(ids), BATCH_SIZE)]
    results: list[list[Any]] = [[] for _ in chunks]
    failures: list[_ListFailed] = []

    async with trio.open_nursery() as nursery:

        async def fetch(index: int, chunk: list[str]) -> None:
            try:
                results[index] = await _batch(chunk)
            except _ListFailed as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()  # one failed chunk fails the whole list

        for index, chunk in enumerate(chunks):
            nursery.start_soon(fetch, index, chunk)

    if failures:
        failure = failures[0]
        log.warning("conversation list failed upstream", extra={"status": failure.status})
        raise ProxyError(failure.status, f"Failed to list conversations: {failure.inner}")
    position = {conversation_id: n for n, conversation_id in enumerate(ids)}
    merged = [obj for chunk_data in results for obj in chunk_data]
    merged.sort(
        key=lambda obj: position.get(obj.get("id") if isinstance(obj, dict) else None, len(ids))
    )
    return json_response(merged)


@bp.get("/v1/conversations/<conversation_id>")
@document_response(schemas.Conversation)
@require_session
async def get_conversation(conversation_id: str) -> Response:
    """One of your conversations."""
    await _check_access(conversation_id)
    response = await get_upstream().call("GET", _path(conversation_id))
    if response.status_code == 404:
        raise not_found()  # tracked here but gone upstream (C3)
    if response.status_code != 200:
        raise ProxyError(
            502, f"OpenAI API error: OpenAI API returned status {response.status_code}"
        )
    return json_response(upstream_json(response.content))


@bp.post("/v1/conversations/<conversation_id>")
@document_request(schemas.ConversationUpdate)
@document_response(schemas.Conversation)
@require_session
async def update_conversation(conversation_id: str) -> Response:
    """Update a conversation's metadata (such as its title)."""
    await _check_access(conversation_id)
    upstream = await _forward("POST", _path(conversation_id), body=True)
    status, headers, data = await buffered(upstream)
    if inspect(status, headers, data) is not None:
        await conversation_updated(g.user_id, conversation_id)
    return await send_bytes(status, headers, data)


@bp.delete("/v1/conversations/<conversation_id>")
@document_response(schemas.Deleted)
@require_session
async def delete_conversation(conversation_id: str) -> Response:
    """Delete a conversation."""
    await _check_access(conversation_id)
    return await delete_tracked(
        _path(conversation_id),
        lambda: conversations.delete(services().db, conversation_id, g.user_id),
        kind="conversation",
        missing=not_found(),
    )


@bp.get("/v1/conversations/<conversation_id>/items")
@document_response(schemas.ItemList)
@require_session
async def list_items(conversation_id: str) -> Response:
    """The items (messages) of a conversation, paged."""
    await _check_access(conversation_id)
    return await relay(await _forward("GET", _path(conversation_id, "/items"), body=False))


@bp.post("/v1/conversations/<conversation_id>/items")
@document_request(schemas.ItemsCreate)
@document_response(schemas.ItemList)
@require_session
async def create_items(conversation_id: str) -> Response:
    """Add items (messages) to a conversation."""
    await _check_access(conversation_id)
    return await relay(await _forward("POST", _path(conversation_id, "/items"), body=True))


@bp.route("/v1/conversations/<conversation_id>/pin", methods=["POST", "DELETE"])
@document_response(schemas.Conversation)
@require_session
async def pin(conversation_id: str) -> Response:
    """Pin (POST) or unpin (DELETE) a conversation."""
    await _check_access(conversation_id)
    return await relay(await _forward(request.method, _path(conversation_id, "/pin"), body=False))


@bp.route("/v1/conversations/<conversation_id>/archive", methods=["POST", "DELETE"])
@document_response(schemas.Conversation)
@require_session
async def archive(conversation_id: str) -> Response:
    """Archive (POST) or unarchive (DELETE) a conversation."""
    await _check_access(conversation_id)
    path = _path(conversation_id, "/archive")
    return await relay(await _forward(request.method, path, body=False))


@bp.post("/v1/conversations/<conversation_id>/clone")
@document_response(schemas.Conversation)
@require_session
async def clone(conversation_id: str) -> Response:
    """Copy a conversation with its items."""
    await _check_access(conversation_id)
    return await _tracked_create("POST", _path(conversation_id, "/clone"), body=False)
