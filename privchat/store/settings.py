"""`user_settings`: one JSONB document per user (api.md §2.3.2)."""

from __future__ import annotations

import uuid
from typing import Any

from .db import Database


async def get(db: Database, user_id: uuid.UUID) -> dict[str, Any] | None:
    content = await db.fetchval("SELECT content FROM user_settings WHERE user_id = $1", user_id)
    return content if isinstance(content, dict) else None


async def put(db: Database, user_id: uuid.UUID, content: dict[str, Any]) -> None:
    await db.execute(
        "INSERT INTO user_settings (user_id, content) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET content = EXCLUDED.content",
        user_id,
        content,
    )
