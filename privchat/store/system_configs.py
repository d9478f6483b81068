"""`system_configs`: the single row `key = 'config'` (api.md §2.4, §2.10.7)."""

from __future__ import annotations

from typing import Any

from .db import Database

KEY = "config"


async def get(db: Database) -> dict[str, Any] | None:
    """The stored document, or None when the row does not exist."""
    value = await db.fetchval("SELECT value FROM system_configs WHERE key = $1", KEY)
    if value is None:
        return None
    return value if isinstance(value, dict) else {}


async def put(db: Database, value: dict[str, Any]) -> None:
    await db.execute(
        "INSERT INTO system_configs (key, value) VALUES ($1, $2)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        KEY,
        value,
    )
