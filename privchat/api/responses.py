"""`POST /v1/responses`: the streaming proxy to the upstream Responses API (api.md §2.7).

Order: session auth (which also reads the ban status) → rate limit (§2.7.2, D16) → ban check →
balance check queued (§2.7.3) →
body → model visibility and system prompt (60 s cache) → D5 conversation ownership → tracking →
ownership of every other id the body names (`references`) → upstream opened (status + headers)
→ relayed byte for byte from inside the request, the response id read from the first event
(`upstream.response_id`) and its owner row written beside the stream
(`services.response_owners`: an ownership check of the same user waits for it).
The in-flight slot of the rate limiter is released once the response head is ready.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
from quart import Blueprint, Response, g
from quart_schema import document_request, document_response

from .. import references
from ..auth.guards import require_session
from ..errors import ProxyError, json_response
from ..ratelimit import RateLimiter, Rejection
from ..services.model_settings import ModelSettingsCache
from ..services.registry import opened, services
from ..services.response_owners import open_response_owners
from ..store import conversations as conversation_store
from ..upstream import UpstreamError, forward, relay
from ..upstream.relay import timed
from ..upstream.response_id import OnId, ResponseIdWatch
from . import schemas
from .body import MAX_CHAT_JSON_BYTES, NotJson, parse_json, read_bytes

if TYPE_CHECKING:
    from ..services.registry import Services
    from ..services.response_owners import ResponseOwners

log = logging.getLogger(__name__)

bp = Blueprint("responses", __name__)


def _parse(raw: bytes) -> Any:
    """The body, checked (depth, strings: 400); a body that is not JSON goes upstream as it is,
    for the upstream's own answer."""
    if not raw:
        return None
    try:
        return parse_json(raw)
    except NotJson:
        return None


def conversation_id(body: Any) -> str | None:
    """The `conversation` named by a request body: a string id or `{"id": "..."}` (D5)."""
    if not isinstance(body, dict):
        return None
    value = body.get("conversation")
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def with_system_prompt(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    """Step 7: the prompt, then a blank line, then non-empty string instructions."""
    existing = body.get("instructions")
    out = dict(body)
    out["instructions"] = (
        f"{prompt}\n\n{existing}" if isinstance(existing, str) and existing else prompt
    )
    return out


def _rate_limited(rejection: Rejection) -> Response:
    return json_response(
        rejection.body, 429, headers={"Retry-After": str(rejection.retry_after_seconds)}
    )


@bp.post("/v1/responses")
@document_request(schemas.ResponseCreate)
@document_response(schemas.Response)
@timed
@require_session
async def create_response() -> Response:
    """Create a model response, streamed as server-sent events with `stream: true`."""
    svc = services()
    user_id: uuid.UUID = g.user_id
    limiter = opened(svc.ratelimit, "ratelimit")
    outcome = limiter.acquire(user_id)
    if isinstance(outcome, Rejection):
        return _rate_limited(outcome)
    try:
        return await _proxy(svc, user_id)
    finally:
        outcome.release()  # at the response head, not at the end of the stream


async def _proxy(svc: Services, user_id: uuid.UUID) -> Response:
    if g.banned:  # read with the session, in the same round trip
        raise ProxyError(403, "Access temporarily restricted. Please try again later.")
    gate = svc.balance
    if gate is not None and g.near_account is not None:
        gate.submit(user_id, g.near_account)

    raw = await read_bytes(MAX_CHAT_JSON_BYTES)
    body = _parse(raw)
    cache = opened(svc.model_settings, "model_settings")
    model = body.get("model") if isinstance(body, dict) else None
    extra_headers: list[tuple[str, str]] = []
    cache_hit: bool | None = None
    if isinstance(model, str):
        try:
            entry, cache_hit = await cache.lookup(model)
        except Exception as exc:
            log.error("model settings lookup failed", extra={"error": type(exc).__name__})
            raise ProxyError(500, "Failed to get model") from None
        if not entry.public:
            raise ProxyError(403, "This model is not available")
        if entry.system_prompt is not None:
            try:
                raw = json.dumps(with_system_prompt(body, entry.system_prompt)).encode()
            except (TypeError, ValueError):
                raise ProxyError(500, "Failed to modify instructions") from None
        extra_headers.append(("x-nearai-model-settings-cache", "hit" if cache_hit else "miss"))
        current = cache.cached(model)
        if current is not None and current.exists and current.system_prompt is not None:
            digest = hashlib.sha256(current.system_prompt.encode()).hexdigest()
            extra_headers.append(("x-nearai-model-system-prompt-sha256", digest))

    conversation = conversation_id(body)
    if conversation is not None:
        try:  # ownership check and tracking (updated_at) in one statement
            owned = await conversation_store.touch(svc.db, conversation, user_id)
        except Exception as exc:
            log.error("conversation ownership check failed", extra={"error": type(exc).__name__})
            raise ProxyError(500, "Failed to verify conversation") from None
        if not owned:
            raise ProxyError(404, "Conversation not found")  # D5, before anything goes upstream
    owners = opened(svc.response_owners, "response_owners")
    await references.check(svc.db, owners, user_id, body, conversation)

    try:
        upstream = await forward("POST", "responses", raw)
    except UpstreamError as exc:
        return exc.response()  # type: ignore[no-any-return]
    status = upstream.status_code
    if 200 <= status < 300:
        svc.metrics.event("chat_api.response.created")
        metadata = (
            {"model_id": model, "model_settings_cache_hit": bool(cache_hit)}
            if isinstance(model, str)
            else None
        )
        svc.activity.record(user_id, "response", metadata=metadata)
    log.info(
        "response proxied",
        extra={"user_id": str(user_id), "status": status, "request_bytes": len(raw)},
    )
    watch = None
    if 200 <= status < 300:
        watch = ResponseIdWatch(
            upstream.headers.get("content-type", ""),
            upstream.headers.get("content-encoding"),
            _recorder(owners, user_id),
        )
    return await relay(upstream, extra_headers=extra_headers, watch=watch)


def _recorder(owners: ResponseOwners, user_id: uuid.UUID) -> OnId:
    async def record(response_id: str) -> None:
        owners.record(response_id, user_id)  # written beside the stream, not awaited here

    return record


@asynccontextmanager
async def open_responses(svc: Services, nursery: trio.Nursery) -> AsyncIterator[None]:
    """Feature opener: the per-process rate limiter, model-settings cache and owner-row writer
    (leaving it waits for the owner rows still being written)."""
    svc.ratelimit = RateLimiter()
    svc.model_settings = ModelSettingsCache(svc.db, feed=svc.changes)
    async with open_response_owners(svc.db) as owners:
        svc.response_owners = owners
        yield
