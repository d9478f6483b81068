"""`/v1/users/me` and `/v1/users/me/settings` (api.md §2.3)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, StrictBool, StrictStr
from quart import Blueprint, Response, g
from quart_schema import document_request, document_response

from ..auth.guards import require_session
from ..errors import ApiError, json_response
from ..services.registry import services
from ..store import settings as settings_store
from ..store import users
from ..timefmt import ts_offset
from . import schemas
from .body import read_json

log = logging.getLogger(__name__)

bp = Blueprint("users", __name__, url_prefix="/v1/users")

MAX_SYSTEM_PROMPT_BYTES = 65_536
APPEARANCES = ("Light", "Dark", "System")
Appearance = Literal["Light", "Dark", "System"]
DEFAULTS: dict[str, Any] = {"notification": False, "web_search": True, "appearance": "System"}


def user_json(user: users.User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "avatar_url": user.avatar_url,
        "created_at": ts_offset(user.created_at),
        "updated_at": ts_offset(user.updated_at),
    }


@bp.get("/me")
@document_response(schemas.Profile)
@require_session
async def me() -> Response:
    """Your user profile."""
    db = services().db
    try:
        user = await users.get(db, g.user_id)
        if user is None:
            raise LookupError("user row missing")
        accounts = await users.linked_accounts(db, g.user_id)
    except Exception as error:
        log.error(
            "profile read failed", extra={"user_id": str(g.user_id), "error": type(error).__name__}
        )
        raise ApiError(
            500,
            "Failed to retrieve user profile",
            "An error occurred while fetching your profile information",
        ) from None
    linked = [{"provider": a["provider"], "linked_at": ts_offset(a["linked_at"])} for a in accounts]
    return json_response({"user": user_json(user), "linked_accounts": linked})


def effective(stored: dict[str, Any] | None) -> dict[str, Any]:
    """Stored settings over the defaults, in the reference's field order; bad values → default."""
    stored = stored or {}
    out: dict[str, Any] = {}
    out["notification"] = _pick(stored, "notification", bool)
    prompt = stored.get("system_prompt")
    if isinstance(prompt, str):
        out["system_prompt"] = prompt
    out["web_search"] = _pick(stored, "web_search", bool)
    appearance = stored.get("appearance")
    out["appearance"] = appearance if appearance in APPEARANCES else DEFAULTS["appearance"]
    return out


def _pick(stored: dict[str, Any], key: str, kind: type) -> Any:
    value = stored.get(key)
    return value if isinstance(value, kind) else DEFAULTS[key]


def _check_prompt(prompt: str | None) -> None:
    if prompt is not None and len(prompt.encode("utf-8")) > MAX_SYSTEM_PROMPT_BYTES:
        raise ApiError(400, "System prompt exceeds max length")


def _settings_response(content: dict[str, Any]) -> Response:
    return json_response({"user_id": str(g.user_id), "settings": content})


@bp.get("/me/settings")
@document_response(schemas.UserSettings)
@require_session
async def get_settings() -> Response:
    """Your settings."""
    try:
        stored = await settings_store.get(services().db, g.user_id)
    except Exception as error:
        log.error("settings read failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to get user settings") from None
    return _settings_response(effective(stored))


class SettingsReplace(BaseModel):
    notification: StrictBool
    web_search: StrictBool
    appearance: Appearance
    system_prompt: StrictStr | None = None


class SettingsPatch(BaseModel):
    notification: StrictBool | None = None
    web_search: StrictBool | None = None
    appearance: Appearance | None = None
    system_prompt: StrictStr | None = None


@bp.post("/me/settings")
@document_response(schemas.UserSettings)
@document_request(SettingsReplace)
@require_session
async def replace_settings() -> Response:
    """Replace your settings."""
    body = await read_json(SettingsReplace)
    _check_prompt(body.system_prompt)
    content = effective(body.model_dump())
    await _save(content)
    return _settings_response(content)


@bp.patch("/me/settings")
@document_response(schemas.UserSettings)
@document_request(SettingsPatch)
@require_session
async def patch_settings() -> Response:
    """Change some of your settings."""
    body = await read_json(SettingsPatch)
    _check_prompt(body.system_prompt)
    db = services().db
    try:
        current = effective(await settings_store.get(db, g.user_id))
    except Exception as error:
        log.error("settings read failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to update user settings") from None
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    content = effective({**current, **changes})
    await _save(content)
    return _settings_response(content)


async def _save(content: dict[str, Any]) -> None:
    try:
        await settings_store.put(services().db, g.user_id, content)
    except Exception as error:
        log.error("settings write failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to update user settings") from None
