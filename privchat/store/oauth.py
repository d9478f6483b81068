"""`oauth_states` (one-time, PKCE verifier, D6 expiry) and `oauth_tokens` (upsert per user+provider)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .db import Connection, Database

STATE_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class OAuthState:
    provider: str
    redirect_uri: str
    frontend_callback: str | None
    code_verifier: str | None = field(repr=False)
    created_at: datetime


async def save_state(
    db: Database,
    state: str,
    provider: str,
    redirect_uri: str,
    frontend_callback: str | None,
    code_verifier: str | None,
) -> None:
    await db.execute(
        "INSERT INTO oauth_states (state, provider, redirect_uri, frontend_callback, code_verifier)"
        " VALUES ($1, $2, $3, $4, $5)",
        state,
        provider,
        redirect_uri,
        frontend_callback,
        code_verifier,
    )


async def consume_state(db: Database, state: str) -> OAuthState | None:
    """Delete and return the state (one-time use); None when unknown or older than 10 minutes."""
    row = await db.fetchrow(
        "DELETE FROM oauth_states WHERE state = $1 RETURNING provider, redirect_uri,"
        " frontend_callback, code_verifier, created_at, NOW() - created_at AS age",
        state,
    )
    if row is None or row["age"] > STATE_LIFETIME:
        return None
    return OAuthState(
        row["provider"],
        row["redirect_uri"],
        row["frontend_callback"],
        row["code_verifier"],
        row["created_at"],
    )


async def upsert_token(
    conn: Connection | Database,
    user_id: uuid.UUID,
    provider: str,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        "INSERT INTO oauth_tokens (user_id, provider, access_token, refresh_token, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (user_id, provider) DO UPDATE SET access_token = EXCLUDED.access_token,"
        " refresh_token = EXCLUDED.refresh_token, expires_at = EXCLUDED.expires_at",
        user_id,
        provider,
        access_token,
        refresh_token,
        expires_at,
    )
