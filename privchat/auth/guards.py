"""The session guard and the admin guard used by every protected route (api.md §1.3, §1.4).

Handlers decorated with `@require_session` find the caller in `g.user_id` / `g.session_id`.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from quart import g, request

from ..errors import ApiError
from ..services.registry import services
from . import sessions

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

NEAR_DOMAIN = "near"  # the synthetic domain of NEAR wallet users; never grants admin (D12)


async def authenticate() -> sessions.Session:
    """Steps 1-5 of api.md §1.3, in order, with the exact 401 messages."""
    header = request.headers.get("authorization")
    if header is None or not header.isascii() or not header.isprintable():
        raise ApiError(
            401,
            "Missing authorization header",
            "Request must include an Authorization header with a Bearer token",
        )
    if not header.startswith("Bearer "):
        raise ApiError(
            401,
            "Invalid authorization header format",
            "Authorization header must be in the format: 'Bearer <token>'",
        )
    token = header[len("Bearer ") :]
    if not sessions.well_formed(token):
        raise ApiError(
            401,
            "Invalid or malformed session token",
            "Session token must start with 'sess_' and be 37 characters long",
        )
    svc = services()
    try:
        session = await svc.sessions.find(svc.db, token)
    except Exception:
        log.exception("session lookup failed")
        raise ApiError(500, "Failed to authenticate session") from None
    if session is None:
        raise ApiError(
            401,
            "Session not found",
            "The provided session token does not match any active session. Please log in again.",
        )
    now = datetime.now(UTC)
    if session.expires_at < now:
        raise ApiError(
            401,
            "Session has expired",
            "Your session has expired. Please log in again to continue.",
        )
    g.user_id = session.user_id
    g.session_id = session.id
    g.banned = session.banned_at(now)
    g.near_account = session.near_account
    return session


def admin_domain(email: str, admin_domains: frozenset[str]) -> bool:
    if "@" not in email:
        return False
    domain = email.split("@", 1)[1].lower()
    return domain != NEAR_DOMAIN and domain in admin_domains


async def is_admin(user_id: uuid.UUID) -> bool:
    """Whether the user's email is in an admin domain (raises ApiError 500 if unknowable)."""
    svc = services()
    try:
        email = await svc.db.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    except Exception:
        log.exception("admin lookup failed")
        raise ApiError(500, "Failed to verify admin access") from None
    return email is not None and admin_domain(email, svc.config.admin_domains)


async def authorize_admin() -> None:
    session = await authenticate()
    if not await is_admin(session.user_id):
        raise ApiError(403, "Admin access required")


# Set on guarded handlers ("session" or "admin"); the OpenAPI document marks them as needing a
# bearer token. Decorators built with functools.wraps carry it outwards.
GUARD_ATTRIBUTE = "_privchat_guard"


def require_session(handler: F) -> F:
    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        await authenticate()
        return await handler(*args, **kwargs)

    setattr(wrapper, GUARD_ATTRIBUTE, "session")
    return wrapper  # type: ignore[return-value]


def require_admin(handler: F) -> F:
    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        await authorize_admin()
        return await handler(*args, **kwargs)

    setattr(wrapper, GUARD_ATTRIBUTE, "admin")
    return wrapper  # type: ignore[return-value]
