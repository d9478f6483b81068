"""`users` and `oauth_accounts`: find, create and link."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .db import Connection, Database

PROVIDERS = ("google", "github", "near")


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    name: str | None
    avatar_url: str | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = "id, email, name, avatar_url, created_at, updated_at"


def _user(row: asyncpg.Record | None) -> User | None:
    return None if row is None else User(**dict(row))


async def get(db: Database | Connection, user_id: uuid.UUID) -> User | None:
    return _user(await db.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id))


async def get_by_email(db: Database | Connection, email: str) -> User | None:
    return _user(await db.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE email = $1", email))


async def create(
    db: Database | Connection, email: str, name: str | None, avatar_url: str | None
) -> User | None:
    """Insert a user; None when the e-mail is taken (a concurrent create won)."""
    row = await db.fetchrow(
        f"INSERT INTO users (email, name, avatar_url) VALUES ($1, $2, $3)"
        f" ON CONFLICT (email) DO NOTHING RETURNING {_COLUMNS}",
        email,
        name,
        avatar_url,
    )
    return _user(row)


async def find_by_account(
    db: Database | Connection, provider: str, provider_user_id: str
) -> uuid.UUID | None:
    return await db.fetchval(
        "SELECT user_id FROM oauth_accounts WHERE provider = $1 AND provider_user_id = $2",
        provider,
        provider_user_id,
    )


async def link_account(
    db: Database | Connection, user_id: uuid.UUID, provider: str, provider_user_id: str
) -> None:
    """Link a provider account; an account already linked (to anyone) stays as it is."""
    await db.execute(
        "INSERT INTO oauth_accounts (user_id, provider, provider_user_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (provider, provider_user_id) DO NOTHING",
        user_id,
        provider,
        provider_user_id,
    )


async def linked_accounts(db: Database | Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT provider, provider_user_id, linked_at FROM oauth_accounts"
        " WHERE user_id = $1 ORDER BY linked_at DESC",
        user_id,
    )


async def list_page(db: Database, limit: int, offset: int) -> tuple[list[User], int]:
    """Users newest first, and the count of all users (also when `offset` is past the end)."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM users ORDER BY created_at DESC, id LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    total = await db.fetchval("SELECT COUNT(*) FROM users")
    return [User(**dict(row)) for row in rows], int(total)
