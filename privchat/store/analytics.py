"""`user_activity_log` reads for the admin API (api.md §2.10.2)."""

from __future__ import annotations

import uuid
from datetime import datetime

from .db import Database, Record


async def user_activity(db: Database, user_id: uuid.UUID, limit: int, offset: int) -> list[Record]:
    return await db.fetch(
        "SELECT id, user_id, activity_type, auth_method, metadata, created_at"
        " FROM user_activity_log WHERE user_id = $1"
        " ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        user_id,
        limit,
        offset,
    )


async def summary(db: Database, start: datetime, end: datetime) -> tuple[Record, list[Record]]:
    """Counts over the half-open window [start, end) (api.md §2.10.8), in two statements."""
    totals = await db.fetchrow(
        "SELECT (SELECT count(*) FROM users) AS total_users,"
        " (SELECT count(*) FROM users WHERE created_at >= $1 AND created_at < $2) AS new_users,"
        " count(DISTINCT user_id) AS active_users,"
        " count(*) FILTER (WHERE activity_type = 'login') AS total_logins,"
        " count(*) FILTER (WHERE activity_type = 'signup') AS total_signups,"
        " count(*) FILTER (WHERE activity_type = 'response') AS total_responses,"
        " count(*) FILTER (WHERE activity_type = 'conversation') AS total_conversations,"
        " count(*) FILTER (WHERE activity_type = 'file_upload') AS total_file_uploads"
        " FROM user_activity_log WHERE created_at >= $1 AND created_at < $2",
        start,
        end,
    )
    assert totals is not None
    methods = await db.fetch(
        "SELECT auth_method, count(DISTINCT user_id) AS user_count,"
        " count(*) FILTER (WHERE activity_type = 'login') AS login_count,"
        " count(*) FILTER (WHERE activity_type = 'signup') AS signup_count"
        " FROM user_activity_log"
        " WHERE created_at >= $1 AND created_at < $2 AND auth_method IS NOT NULL"
        " GROUP BY auth_method ORDER BY user_count DESC, auth_method",
        start,
        end,
    )
    return totals, methods


async def top_users(db: Database, start: datetime, end: datetime, limit: int) -> list[Record]:
    return await db.fetch(
        "SELECT u.id AS user_id, u.email, count(*) AS activity_count,"
        " max(l.created_at) AS last_active"
        " FROM user_activity_log l JOIN users u ON u.id = l.user_id"
        " WHERE l.created_at >= $1 AND l.created_at < $2"
        " GROUP BY u.id, u.email ORDER BY activity_count DESC, last_active DESC LIMIT $3",
        start,
        end,
        limit,
    )
