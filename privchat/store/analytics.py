"""`user_activity_log` reads for the admin API (api.md §2.10.2)."""

from __future__ import annotations

import uuid

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
