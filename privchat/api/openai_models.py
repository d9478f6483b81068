"""`GET /v1/models` and `GET /v1/models/{id}`: the model catalogue in the OpenAI shape, so the
`openai` SDK's `models.list()` and `models.retrieve()` work (an addition, see deviations.md).

Lists what the caller may use: models an admin has not made private; admins see every model.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from quart import Blueprint, Response, g
from quart_schema import document_response

from ..auth.guards import is_admin, require_session
from ..errors import ProxyError, json_response
from ..upstream import UpstreamError, buffered, forward
from ..upstream.decode import decoded
from . import schemas
from .models import annotate

log = logging.getLogger(__name__)

bp = Blueprint("openai_models", __name__)


def _openai_model(entry: dict[str, Any]) -> dict[str, Any]:
    metadata = entry.get("metadata") if isinstance(entry.get("metadata"), dict) else {}
    owner = metadata.get("ownedBy") if isinstance(metadata.get("ownedBy"), str) else None
    return {
        "id": entry["modelId"],
        "object": "model",
        "created": 0,  # the catalogue has no creation time
        "owned_by": owner or entry["modelId"].split("/", 1)[0],
    }


async def _usable_models() -> list[dict[str, Any]]:
    """The upstream catalogue, annotated with `public`, without private models for non-admins."""
    try:
        upstream = await forward("GET", "model/list")
        status, headers, raw = await buffered(upstream)
    except UpstreamError as exc:
        raise ProxyError(exc.status, exc.message) from None
    encoding = ", ".join(v for n, v in headers if n.lower() == "content-encoding")
    try:
        body = json.loads(decoded(raw, encoding)) if 200 <= status < 300 else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("models"), list):
        log.warning("upstream model list unusable", extra={"status": status})
        raise ProxyError(502, "Failed to get the model list from the upstream")
    entries = [m for m in (await annotate(body))["models"] if isinstance(m, dict)]
    entries = [m for m in entries if isinstance(m.get("modelId"), str)]
    if not await is_admin(g.user_id):
        entries = [m for m in entries if m["public"]]
    return [_openai_model(m) for m in entries]


@bp.get("/v1/models")
@document_response(schemas.ModelList)
@require_session
async def models_list() -> Response:
    """The models you may use (OpenAI shape, for `client.models.list()`)."""
    return json_response({"object": "list", "data": await _usable_models()})


@bp.get("/v1/models/<path:model_id>")
@document_response(schemas.Model)
@require_session
async def models_retrieve(model_id: str) -> Response:
    """One model you may use (OpenAI shape, for `client.models.retrieve()`)."""
    for model in await _usable_models():
        if model["id"] == model_id:
            return json_response(model)
    return json_response(
        {
            "error": {
                "message": f"The model '{model_id}' does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
        },
        404,
    )
