"""`GET /v1/model/list` (annotated with `public`, §2.8.1) and `GET /v1/signature/{chat_id}`
(pass-through, §2.8.2). Both forward the client's raw query string (D1). A signature is only
asked for a response id the caller created (`response_owners`); any other id gets the
upstream's own "not found" answer from privchat, so foreign and unknown ids look the same."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

from quart import Blueprint, Response, g, request

from ..auth.guards import require_session
from ..errors import ProxyError, json_response
from ..services.registry import opened, services
from ..store import models as model_store
from ..upstream import (
    UpstreamError,
    buffered,
    forward,
    relay,
    send_bytes,
)
from ..upstream.decode import decoded
from ..upstream.relay import timed

log = logging.getLogger(__name__)

bp = Blueprint("models", __name__)


async def annotate(body: dict[str, Any]) -> dict[str, Any]:
    """Add `public` to every object in `models`, from the row whose `model_id` is the element's
    `modelId` (true when there is no row, no `modelId`, or the lookup failed)."""
    entries = [m for m in body["models"] if isinstance(m, dict)]
    ids = [m["modelId"] for m in entries if isinstance(m.get("modelId"), str)]
    try:
        public = await model_store.public_map(services().db, ids) if ids else {}
    except Exception as exc:
        log.warning("model visibility lookup failed", extra={"error": type(exc).__name__})
        public = {}
    for entry in entries:
        model_id = entry.get("modelId")
        entry["public"] = public.get(model_id, True) if isinstance(model_id, str) else True
    return body


@bp.get("/v1/model/list")
@timed
@require_session
async def model_list() -> Response:
    """The model catalogue with pricing and metadata, each marked `public`."""
    try:
        upstream = await forward("GET", "model/list")
    except UpstreamError as exc:
        return exc.response()  # type: ignore[no-any-return]
    if not 200 <= upstream.status_code < 300:
        return await relay(upstream)
    try:
        status, headers, raw = await buffered(upstream)
    except UpstreamError as exc:
        raise ProxyError(502, exc.message) from None
    encoding = ", ".join(v for n, v in headers if n.lower() == "content-encoding")
    try:
        body = json.loads(decoded(raw, encoding))  # D4: a compressed list is still annotated
    except (ValueError, UnicodeDecodeError):
        return await send_bytes(status, headers, raw)
    timing = [(n, v) for n, v in headers if n.lower() == "server-timing"]
    if isinstance(body, dict) and isinstance(body.get("models"), list):
        body = await annotate(body)
    out = json.dumps(body, separators=(",", ":")).encode()
    return await send_bytes(status, [("content-type", "application/json"), *timing], out)


@bp.get("/v1/signature/<path:chat_id>")
@timed
@require_session
async def signature(chat_id: str) -> Response:
    """The upstream's signature of a completed response, for verification."""
    try:
        owners = opened(services().response_owners, "response_owners")
        owned = await owners.owns(chat_id, g.user_id)  # waits for the caller's pending write
    except Exception as exc:
        log.error("signature ownership check failed", extra={"error": type(exc).__name__})
        raise ProxyError(500, "Failed to verify response") from None
    if not owned:
        return signature_not_found(chat_id)
    try:
        upstream = await forward("GET", f"signature/{quote(chat_id, safe='')}")
    except UpstreamError as exc:
        return exc.response()  # type: ignore[no-any-return]
    return await relay(upstream)


def signature_not_found(chat_id: str) -> Response:
    """The upstream's 404 for a signature it does not have (upstream.md §5.1)."""
    algo = request.args.get("signing_algo") or "ecdsa"
    if algo.lower() not in ("ecdsa", "ed25519"):
        algo = "ecdsa"
    message = f"Signature not found: {chat_id}:{algo.lower()}"
    error = {"message": message, "type": "not_found_error", "param": None, "code": None}
    return json_response({"error": error}, 404)
