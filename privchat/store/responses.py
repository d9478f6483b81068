"""The `response_owners` table: which user created which upstream response id.

A row is written when a relayed `/v1/responses` answer names its id (its first event, or the
top-level `id` of a JSON answer); a response id never changes owner. Used to check
`previous_response_id` and `/v1/signature/{id}` before anything goes upstream.
"""

from __future__ import annotations

import uuid

from .conversations import well_formed
from .db import Connection, Database


async def record(db: Database | Connection, response_id: str, user_id: uuid.UUID) -> bool:
    """Own `response_id`; True when the caller owns it afterwards (False: another user does,
    or the id cannot be stored)."""
    if not well_formed(response_id):
        return False
    owner = await db.fetchval(
        "INSERT INTO response_owners (id, user_id) VALUES ($1, $2)"
        " ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id"
        " WHERE response_owners.user_id = EXCLUDED.user_id"
        " RETURNING user_id",
        response_id,
        user_id,
    )
    return owner == user_id


async def owns(db: Database | Connection, response_id: str, user_id: uuid.UUID) -> bool:
    if not well_formed(response_id):
        return False
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM response_owners WHERE id = $1 AND user_id = $2)",
            response_id,
            user_id,
        )
    )
