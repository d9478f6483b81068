"""Admin model settings (api.md §2.10.3-§2.10.5), on the guarded admin blueprint.

The upstream model-existence check of `PATCH` is skipped when DEV=true (like the reference's
test build).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from pydantic import BaseModel, RootModel, StrictBool, StrictStr
from quart import Response
from quart_schema import document_request

from ..errors import ApiError, json_response
from ..services.model_settings import ModelSettingsCache
from ..services.registry import services
from ..store import models as store
from ..store.models import ModelSettings
from ..upstream import UpstreamError, get_upstream
from .admin import bp
from .body import read_json
from .query import page

log = logging.getLogger(__name__)

MAX_PROMPT_BYTES = 65_536


class Partial(BaseModel):
    public: StrictBool | None = None
    system_prompt: StrictStr | None = None


class Patch(RootModel[dict[str, Partial]]):
    pass


def _cache() -> ModelSettingsCache | None:
    return services().model_settings


@bp.get("/models")
async def list_models() -> Response:
    """Model settings (visibility, system prompt), paged."""
    limit, offset = page()
    try:
        rows, total = await store.page(services().db, limit, offset)
    except Exception as exc:
        log.error("admin model list failed", extra={"error": type(exc).__name__})
        raise ApiError(500, "Failed to list models") from None
    return json_response(
        {
            "models": [{"model_id": m, "settings": s.as_json()} for m, s in rows],
            "limit": limit,
            "offset": offset,
            "total": total,
        }
    )


async def _verify_upstream(model_id: str) -> None:
    try:
        response = await get_upstream().call("GET", f"model/{quote(model_id, safe='')}")
    except UpstreamError:
        raise ApiError(
            500, f"Failed to verify existence of model '{model_id}' with proxy"
        ) from None
    if response.status_code == 404:
        raise ApiError(400, f"Model '{model_id}' does not exist in proxy service")
    if not 200 <= response.status_code < 300:
        raise ApiError(500, f"Failed to verify model '{model_id}' with proxy")


@bp.patch("/models")
@document_request(Patch)
async def upsert_models() -> Response:
    """Create or change the settings of several models."""
    patch = (await read_json(Patch)).root
    if not patch:
        raise ApiError(400, "At least one model must be provided")
    svc = services()
    if not svc.config.dev:
        for model_id in patch:
            await _verify_upstream(model_id)
    out = []
    for model_id, partial in patch.items():
        if not model_id.strip():
            raise ApiError(400, "model_id cannot be empty")
        prompt = partial.system_prompt
        if prompt is not None and len(prompt.encode()) > MAX_PROMPT_BYTES:
            raise ApiError(
                400,
                f"System prompt for model '{model_id}' exceeds maximum length of "
                f"{MAX_PROMPT_BYTES} bytes",
            )
        try:
            old = await store.get(svc.db, model_id)
        except Exception:
            raise ApiError(500, "Failed to check if model exists") from None
        base = old or ModelSettings()
        settings = ModelSettings(
            partial.public if partial.public is not None else base.public,
            prompt if prompt is not None else base.system_prompt,
        )
        try:
            if old is None:
                await store.create(svc.db, model_id, settings)
            else:
                await store.update(svc.db, model_id, settings)
        except Exception as exc:
            log.error("admin model write failed", extra={"error": type(exc).__name__})
            verb = "create" if old is None else "update"
            raise ApiError(500, f"Failed to {verb} model {model_id}") from None
        cache = _cache()
        if cache is not None:
            cache.invalidate(model_id)
        out.append({"model_id": model_id, "settings": settings.as_json()})
    return json_response(out)


@bp.delete("/models/<path:model_id>")
async def delete_model(model_id: str) -> Response:
    """Delete the settings of a model."""
    if not model_id.strip():
        raise ApiError(400, "model_id cannot be empty")
    try:
        deleted = await store.delete(services().db, model_id)
    except Exception:
        raise ApiError(500, "Failed to delete model") from None
    if not deleted:
        raise ApiError(404, "Model not found")
    cache = _cache()
    if cache is not None:
        cache.invalidate(model_id)
    return Response("", status=204)
