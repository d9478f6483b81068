"""`near_used_nonces`: NEP-413 replay protection (api.md §2.2.3 steps 3 and 7)."""

from __future__ import annotations

from .db import Database


async def purge_old(db: Database) -> None:
    await db.execute("DELETE FROM near_used_nonces WHERE used_at < NOW() - INTERVAL '10 minutes'")


async def consume(db: Database, nonce_hex: str) -> bool:
    """Record the nonce; False when it was already used."""
    status = await db.execute(
        "INSERT INTO near_used_nonces (nonce_hex) VALUES ($1) ON CONFLICT (nonce_hex) DO NOTHING",
        nonce_hex,
    )
    return status == "INSERT 0 1"
