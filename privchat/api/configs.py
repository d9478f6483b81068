"""`GET /v1/configs`: the system configs any signed-in user may read (api.md §2.4)."""

from __future__ import annotations

import logging
from typing import Any

from quart import Blueprint, Response
from quart_schema import document_response

from ..auth.guards import require_session
from ..errors import ApiError, json_response
from ..services.registry import services
from ..store import system_configs
from . import schemas

log = logging.getLogger(__name__)

bp = Blueprint("configs", __name__, url_prefix="/v1")


def configs_json(stored: dict[str, Any]) -> dict[str, Any]:
    model = stored.get("default_model")
    return {"default_model": model} if isinstance(model, str) else {}


@bp.get("/configs")
@document_response(schemas.StoredSystemConfigs)
@require_session
async def get_configs() -> Response:
    """System settings for clients (such as the default model)."""
    try:
        stored = await system_configs.get(services().db)
    except Exception as error:
        log.error("system configs read failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to get system configs") from None
    return json_response(None if stored is None else configs_json(stored))
