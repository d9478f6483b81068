"""The `conversations` table: which user owns which upstream conversation id (api.md §2.5).

A user owns a conversation iff a row (id, user_id) exists. Tracking inserts the row; on an id
conflict only `updated_at` is bumped, and only for the same owner: a conversation never changes
owner, and another user's row is not even touched.
"""

from __future__ import annotations

import uuid

from .db import Connection, Database

MAX_ID_LENGTH = 255  # conversations.id is VARCHAR(255)


def well_formed(conversation_id: str) -> bool:
    """Could this string be a stored id? Anything else cannot be owned (and must not reach SQL:
    PostgreSQL rejects NUL bytes in text)."""
    return (
        0 < len(conversation_id) <= MAX_ID_LENGTH
        and conversation_id.isprintable()
        and "\x00" not in conversation_id
    )


async def owns(db: Database | Connection, conversation_id: str, user_id: uuid.UUID) -> bool:
    if not well_formed(conversation_id):
        return False
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2)",
            conversation_id,
            user_id,
        )
    )


async def touch(db: Database | Connection, conversation_id: str, user_id: uuid.UUID) -> bool:
    """`owns` and a bump of `updated_at` in one round trip: True iff the caller owns the row."""
    if not well_formed(conversation_id):
        return False
    return (
        await db.fetchval(
            "UPDATE conversations SET updated_at = NOW() WHERE id = $1 AND user_id = $2"
            " RETURNING TRUE",
            conversation_id,
            user_id,
        )
        is True
    )


async def track(db: Database | Connection, conversation_id: str, user_id: uuid.UUID) -> bool:
    """Record that `user_id` owns `conversation_id`, or bump `updated_at` if it already does.

    Returns True when the caller owns the conversation afterwards; False when another user
    owns it (nothing is changed then) or the id cannot be stored.
    """
    if not well_formed(conversation_id):
        return False
    owner = await db.fetchval(
        "INSERT INTO conversations (id, user_id) VALUES ($1, $2)"
        " ON CONFLICT (id) DO UPDATE SET updated_at = NOW()"
        " WHERE conversations.user_id = EXCLUDED.user_id"
        " RETURNING user_id",
        conversation_id,
        user_id,
    )
    return owner == user_id


async def list_ids(db: Database | Connection, user_id: uuid.UUID) -> list[str]:
    """The user's conversation ids, most recently updated first (ties by id, for stable pages)."""
    rows = await db.fetch(
        "SELECT id FROM conversations WHERE user_id = $1 ORDER BY updated_at DESC, id",
        user_id,
    )
    return [row["id"] for row in rows]


async def delete(db: Database | Connection, conversation_id: str, user_id: uuid.UUID) -> bool:
    """Remove the caller's row; False when there was none."""
    if not well_formed(conversation_id):
        return False
    status = await db.execute(
        "DELETE FROM conversations WHERE id = $1 AND user_id = $2", conversation_id, user_id
    )
    return status.split()[-1] != "0"
