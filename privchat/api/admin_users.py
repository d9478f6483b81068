"""Admin routes for people and settings (api.md §2.10.1, 2.10.2, 2.10.6, 2.10.7).

Registered on the admin blueprint, so its before-request admin guard covers them all.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, StrictStr
from quart import Response
from quart_schema import document_request, document_response

from ..errors import ApiError, TextError, json_response
from ..services.registry import Services, services
from ..store import analytics, system_configs, users
from ..timefmt import ts_z
from . import schemas
from .admin import bp
from .body import read_json
from .configs import configs_json
from .query import page
from .users import user_json

log = logging.getLogger(__name__)


@bp.get("/users")
async def list_users() -> Response:
    """All users, paged."""
    limit, offset = page()
    try:
        found, total = await users.list_page(services().db, limit, offset)
    except Exception as error:
        log.error("admin user list failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to list users") from None
    return json_response(
        {"users": [user_json(u) for u in found], "limit": limit, "offset": offset, "total": total}
    )


@bp.get("/users/<user_id>/activity")
async def user_activity(user_id: str) -> Response:
    """A user's recent activity."""
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        raise TextError(400, "Invalid URL: Cannot parse `user_id` as a UUID") from None
    limit, offset = page(validate_limit=False)
    try:
        rows = await analytics.user_activity(services().db, uid, limit, offset)
    except Exception as error:
        log.error("admin activity read failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to retrieve user activity") from None
    activities = [
        {
            "id": str(row["id"]),
            "user_id": str(row["user_id"]),
            "activity_type": row["activity_type"],
            "auth_method": row["auth_method"],
            "metadata": row["metadata"],
            "created_at": ts_z(row["created_at"]),
        }
        for row in rows
    ]
    return json_response(
        {"user_id": str(uid), "activities": activities, "limit": limit, "offset": offset}
    )


@bp.post("/vpc/revoke")
async def vpc_revoke() -> Response:
    """Forget the upstream key obtained by VPC login (no-op with a static key)."""
    credentials = services().vpc_credentials
    if credentials is not None:
        try:
            await credentials.revoke()
        except Exception as error:
            log.error("vpc revoke failed", extra={"error": type(error).__name__})
            raise ApiError(500, "Failed to revoke VPC credentials") from None
        log.info("vpc credentials revoked")
    return Response("", status=204)


class ConfigsPatch(BaseModel):
    default_model: StrictStr | None = None


@bp.patch("/configs")
@document_response(schemas.SystemConfigs)
@document_request(ConfigsPatch)
async def patch_configs() -> Response:
    """Change the system settings (such as the default model)."""
    body = await read_json(ConfigsPatch)
    svc = services()
    if body.default_model is not None and not svc.config.dev:
        await verify_model_upstream(svc, body.default_model)
    try:
        stored = await system_configs.get(svc.db)
    except Exception as error:
        log.error("system configs read failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to check if system configs exist") from None
    merged: dict[str, Any] = configs_json(stored or {})
    if body.default_model is not None:
        merged["default_model"] = body.default_model
    try:
        await system_configs.put(svc.db, merged)
    except Exception as error:
        log.error("system configs write failed", extra={"error": type(error).__name__})
        message = (
            "Failed to update system configs"
            if stored is not None
            else "Failed to create system configs"
        )
        raise ApiError(500, message) from None
    return json_response(merged)


async def verify_model_upstream(svc: Services, model_id: str) -> None:
    """Production only (DEV=false): the model must exist upstream (api.md §2.10.4 step 2)."""
    upstream = svc.upstream
    if upstream is None:
        return  # no upstream client configured in this process: nothing to ask
    try:
        response = await upstream.call("GET", "model/" + quote(model_id, safe=""))
    except Exception as error:
        log.warning("model check transport error", extra={"error": type(error).__name__})
        raise ApiError(
            500, f"Failed to verify existence of model '{model_id}' with proxy"
        ) from None
    if response.status_code == 404:
        raise ApiError(400, f"Model '{model_id}' does not exist in proxy service")
    if not 200 <= response.status_code < 300:
        raise ApiError(500, f"Failed to verify model '{model_id}' with proxy")
