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
    banned: bool = False  # an active ban, read in the same round trip as the session


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
    """The session of `token`, with its user's ban status (one round trip for both)."""
    row = await db.fetchrow(
        "SELECT s.id, s.user_id, s.created_at, s.expires_at, EXISTS ("
        "  SELECT 1 FROM user_bans b WHERE b.user_id = s.user_id AND b.revoked_at IS NULL"
        "  AND (b.expires_at IS NULL OR b.expires_at > NOW())"
        ") AS banned FROM sessions s WHERE s.token_hash = $1",
        hash_token(token),
    )
    if row is None:
        return None
    return Session(
        row["id"], row["user_id"], row["created_at"], row["expires_at"], banned=row["banned"]
    )


async def delete(db: Database, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await db.execute(
        "DELETE FROM sessions WHERE id = $1 AND user_id = $2", session_id, user_id
    )
    return status != "DELETE 0"


async def delete_expired(db: Database) -> int:
    status = await db.execute("DELETE FROM sessions WHERE expires_at < NOW()")
    return int(status.split()[-1])
