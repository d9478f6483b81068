"""The `user_bans` table: active-ban checks and timed bans (api.md §2.7.3, §6 scenarios 42-45).

A ban is active when `revoked_at IS NULL` and (`expires_at IS NULL` or `expires_at > NOW()`).
The DB allows at most one unrevoked ban per (user, ban_type).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from .db import Connection, Database

NEAR_BALANCE_LOW = "near_balance_low"
MANUAL = "manual"

_ACTIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > NOW())"


async def has_active(db: Database | Connection, user_id: uuid.UUID) -> bool:
    return bool(
        await db.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM user_bans WHERE user_id = $1 AND {_ACTIVE})", user_id
        )
    )


async def count_active(db: Database | Connection, user_id: uuid.UUID) -> int:
    return int(
        await db.fetchval(
            f"SELECT COUNT(*) FROM user_bans WHERE user_id = $1 AND {_ACTIVE}", user_id
        )
    )


async def create(
    db: Database,
    user_id: uuid.UUID,
    ban_type: str,
    reason: str | None,
    duration: timedelta | None,
) -> None:
    """Revoke expired-but-unrevoked bans of this type, then insert the new one (one transaction).

    Raises asyncpg's UniqueViolationError when an active ban of the type exists.
    """
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE user_bans SET revoked_at = NOW() WHERE user_id = $1 AND ban_type = $2"
            " AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= NOW()",
            user_id,
            ban_type,
        )
        await conn.execute(
            "INSERT INTO user_bans (user_id, reason, ban_type, expires_at)"
            " VALUES ($1, $2, $3, NOW() + $4::interval)",
            user_id,
            reason,
            ban_type,
            duration,
        )


async def ban_for_duration(
    db: Database, user_id: uuid.UUID, ban_type: str, reason: str | None, duration: timedelta
) -> bool:
    """Ban unless the user already has any active ban (then a no-op). True when a ban was made."""
    if await has_active(db, user_id):
        return False
    try:
        await create(db, user_id, ban_type, reason, duration)
    except asyncpg.UniqueViolationError:
        return False  # a concurrent check banned first
    return True
