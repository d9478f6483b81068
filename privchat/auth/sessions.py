"""Session tokens: `sess_` + 32 hex, stored only as the SHA-256 of the whole token, 30 days."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..store import Connection, Database

PREFIX = "sess_"
TOKEN_LENGTH = 37
LIFETIME = timedelta(days=30)


def new_token() -> str:
    return PREFIX + uuid.uuid4().hex


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return token.startswith(PREFIX) and len(token) == TOKEN_LENGTH


@dataclass(frozen=True)
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    token: str | None = None  # only known right after creation
    banned: bool = False  # an active ban when read, in the same round trip as the session
    ban_ends: datetime | None = None  # when the last active ban ends; None: never, or no ban
    near_account: str | None = None  # the user's newest NEAR link (balance gating, §2.7.3)

    def banned_at(self, now: datetime) -> bool:
        return self.banned and (self.ban_ends is None or self.ban_ends > now)


async def create(conn: Connection | Database, user_id: uuid.UUID) -> Session:
    token = new_token()
    now = datetime.now(UTC)
    row = await conn.fetchrow(
        "INSERT INTO sessions (user_id, created_at, expires_at, token_hash)"
        " VALUES ($1, $2, $3, $4) RETURNING id",
        user_id,
        now,
        now + LIFETIME,
        hash_token(token),
    )
    assert row is not None
    return Session(row["id"], user_id, now, now + LIFETIME, token)


async def find(db: Database, token: str) -> Session | None:
    return await find_by_hash(db, hash_token(token))


async def find_by_hash(db: Database, token_hash: str) -> Session | None:
    """The session, with its user's active bans (and when they end) and newest NEAR account,
    in one round trip."""
    row = await db.fetchrow(
        "SELECT s.id, s.user_id, s.created_at, s.expires_at, b.n > 0 AS banned,"
        " CASE WHEN b.permanent THEN NULL ELSE b.ends END AS ban_ends, ("
        "  SELECT provider_user_id FROM oauth_accounts WHERE user_id = s.user_id"
        "  AND provider = 'near' ORDER BY linked_at DESC LIMIT 1"
        " ) AS near_account"
        " FROM sessions s CROSS JOIN LATERAL ("
        "  SELECT count(*) AS n, bool_or(expires_at IS NULL) AS permanent, max(expires_at) AS ends"
        "  FROM user_bans WHERE user_id = s.user_id AND revoked_at IS NULL"
        "  AND (expires_at IS NULL OR expires_at > NOW())"
        " ) b WHERE s.token_hash = $1",
        token_hash,
    )
    if row is None:
        return None
    return Session(
        row["id"],
        row["user_id"],
        row["created_at"],
        row["expires_at"],
        banned=row["banned"],
        ban_ends=row["ban_ends"],
        near_account=row["near_account"],
    )


async def delete(db: Database, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await db.execute(
        "DELETE FROM sessions WHERE id = $1 AND user_id = $2", session_id, user_id
    )
    return status != "DELETE 0"


async def delete_expired(db: Database) -> int:
    status = await db.execute("DELETE FROM sessions WHERE expires_at < NOW()")
    return int(status.split()[-1])
