"""Signing a person in, shared by OAuth and NEAR: find-or-create-and-link the user, store the
provider token, open a session, then queue the login/signup activity row.

User, link, token and session are written in one transaction, so a failure leaves nothing
behind (no user without its link, no session without its user). The activity row goes through
the supervised batched writer after the commit, off the request path.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from ..services.registry import Services
from ..store import Connection, Database, users
from ..store import oauth as oauth_store
from . import sessions
from .oauth_providers import OAuthTokenSet

log = logging.getLogger(__name__)

ATTEMPTS = 2  # a lost race on the account link is retried once from scratch


class LoginFailed(Exception):
    """The user could not be found or created; `reason` is safe to log (no PII)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who the provider says this is. `link_by_email`: an existing user with the same e-mail
    gets this account linked (OAuth); NEAR accounts are only found by their link."""

    provider: str
    provider_user_id: str
    email: str = field(repr=False)
    name: str | None = field(repr=False)
    avatar_url: str | None
    link_by_email: bool = True


@dataclass(frozen=True)
class SignedIn:
    user_id: uuid.UUID
    session: sessions.Session
    is_new_user: bool


class _LinkRace(Exception):
    pass


async def sign_in(
    svc: Services, identity: Identity, tokens: OAuthTokenSet | None = None
) -> SignedIn:
    result = await _write(svc.db, identity, tokens)
    kind = "signup" if result.is_new_user else "login"
    svc.activity.record(result.user_id, kind, auth_method=identity.provider)
    svc.metrics.event(f"user.{kind}", identity.provider)
    log.info(
        "user signed in",
        extra={
            "user_id": str(result.user_id),
            "auth_method": identity.provider,
            "new": result.is_new_user,
        },
    )
    return result


async def _write(db: Database, identity: Identity, tokens: OAuthTokenSet | None) -> SignedIn:
    for _ in range(ATTEMPTS):
        try:
            async with db.transaction() as conn:
                user_id, is_new = await _find_or_create(conn, identity)
                if tokens is not None:
                    await oauth_store.upsert_token(
                        conn,
                        user_id,
                        identity.provider,
                        tokens.access_token,
                        tokens.refresh_token,
                        tokens.expires_at,
                    )
                session = await sessions.create(conn, user_id)
                return SignedIn(user_id, session, is_new)
        except _LinkRace:
            continue
        except LoginFailed:
            raise
        except Exception as error:
            raise LoginFailed(f"database error: {type(error).__name__}") from None
    raise LoginFailed("the account link kept changing")


async def _find_or_create(conn: Connection, identity: Identity) -> tuple[uuid.UUID, bool]:
    provider, account = identity.provider, identity.provider_user_id
    owner = await users.find_by_account(conn, provider, account)
    if owner is not None:
        return owner, False
    user = await users.get_by_email(conn, identity.email) if identity.link_by_email else None
    is_new = False
    if user is None:
        user = await users.create(conn, identity.email, identity.name, identity.avatar_url)
        is_new = user is not None
    if user is None:
        # The e-mail is taken: a concurrent sign-in of the same account may have won.
        owner = await users.find_by_account(conn, provider, account)
        if owner is not None:
            return owner, False
        if not identity.link_by_email:
            raise LoginFailed("the synthetic e-mail belongs to a user without this account")
        user = await users.get_by_email(conn, identity.email)
        if user is None:
            raise _LinkRace()
    await users.link_account(conn, user.id, provider, account)
    owner = await users.find_by_account(conn, provider, account)
    if owner != user.id:
        raise _LinkRace()  # linked to someone else meanwhile: roll back, start over
    return user.id, is_new


async def logout(db: Database, session_id: uuid.UUID, caller: uuid.UUID) -> str:
    """Delete one of the caller's sessions: "ok", "not_found" or "forbidden"."""
    owner = await db.fetchval("SELECT user_id FROM sessions WHERE id = $1", session_id)
    if owner is None:
        return "not_found"
    if owner != caller:
        return "forbidden"
    await sessions.delete(db, session_id, caller)
    return "ok"
