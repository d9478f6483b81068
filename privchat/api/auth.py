"""`/v1/auth/*`: the blueprint, logout and mock-login (api.md §2.2.4-2.2.5).

The sign-in flows register on the same blueprint: OAuth in `auth_oauth`, NEAR in `auth_near`.
"""

from __future__ import annotations

import logging
import uuid

from pydantic import BaseModel
from quart import Blueprint, Response, g
from quart_schema import document_request, document_response

from ..auth import login as login_flow
from ..auth import sessions
from ..auth.guards import require_session
from ..errors import ApiError, json_response
from ..services.registry import services
from ..store import users
from ..timefmt import ts_offset
from . import schemas
from .body import read_json

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/v1/auth")


class Logout(BaseModel):
    session_id: uuid.UUID


@bp.post("/logout")
@document_request(Logout)
@require_session
async def logout() -> Response:
    """Sign out: delete one of your sessions (`session_id`, usually the one in use)."""
    body = await read_json(Logout)
    svc = services()
    try:
        outcome = await login_flow.logout(svc.db, body.session_id, g.user_id)
    except Exception:
        log.exception("logout failed", extra={"user_id": str(g.user_id)})
        raise ApiError(
            500, "Failed to logout", "An error occurred while revoking your session"
        ) from None
    if outcome == "not_found":
        raise ApiError(
            404,
            "Session id not found",
            "The provided session id does not match any active session.",
        )
    if outcome == "forbidden":
        raise ApiError(403, "You can only logout your own sessions")
    svc.sessions.forget_user(g.user_id)  # here at once; other replicas are notified
    return Response("", status=204)


class MockLogin(BaseModel):
    email: str
    name: str | None = None
    avatar_url: str | None = None
    oauth_provider: str | None = None


@bp.post("/mock-login")
@document_response(schemas.Session)
@document_request(MockLogin)
async def mock_login() -> Response:
    """Sign in without a provider and get a session token (only with DEV=true)."""
    svc = services()
    if not svc.config.dev:
        raise ApiError(404, "Not found")
    body = await read_json(MockLogin)
    db = svc.db
    try:
        user = await users.get_by_email(db, body.email)
    except Exception:
        log.exception("mock login: user lookup failed")
        raise ApiError(500, "Failed to check user") from None
    if user is None:
        try:
            user = await users.create(db, body.email, body.name, body.avatar_url)
        except Exception:
            log.exception("mock login: user create failed")
            raise ApiError(500, "Failed to create user") from None
        if user is None:
            user = await users.get_by_email(db, body.email)
        if user is None:
            raise ApiError(500, "Failed to re-fetch user after create_user failure")
    provider = (body.oauth_provider or "").lower()
    if provider in users.PROVIDERS:
        local, _, domain = body.email.partition("@")
        provider_user_id = local if provider == "near" and domain == "near" else body.email
        try:
            await users.link_account(db, user.id, provider, provider_user_id)
        except Exception:
            log.warning("mock login: link failed", extra={"user_id": str(user.id)})
    try:
        session = await sessions.create(db, user.id)
    except Exception:
        log.exception("mock login: session create failed")
        raise ApiError(500, "Failed to create session") from None
    return json_response({"token": session.token, "expires_at": ts_offset(session.expires_at)})
