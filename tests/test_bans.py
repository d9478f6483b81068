"""User bans at the repository level: api.md §6 scenarios 42-45."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import httpx2
import pytest

from privchat.runtime import Running
from privchat.store import bans

from .conftest import login


async def _user(client: httpx2.AsyncClient, server: Running) -> uuid.UUID:
    email = f"ban-{uuid.uuid4().hex[:8]}@example.com"
    await login(client, email)
    return await server.services.db.fetchval("SELECT id FROM users WHERE email = $1", email)


async def test_scenario_42_expired_unrevoked_ban_is_revoked_by_the_next(
    client: httpx2.AsyncClient, server: Running
) -> None:
    db = server.services.db
    user = await _user(client, server)
    await db.execute(
        "INSERT INTO user_bans (user_id, ban_type, expires_at) VALUES ($1, $2, NOW() - INTERVAL '1 hour')",
        user,
        bans.NEAR_BALANCE_LOW,
    )
    assert not await bans.has_active(db, user)
    await bans.create(db, user, bans.NEAR_BALANCE_LOW, "low", timedelta(hours=1))
    assert await bans.has_active(db, user)
    revoked = await db.fetchval(
        "SELECT count(*) FROM user_bans WHERE user_id = $1 AND revoked_at IS NOT NULL", user
    )
    assert revoked == 1 and await bans.count_active(db, user) == 1


async def test_scenario_43_expired_manual_ban_no_longer_active(
    client: httpx2.AsyncClient, server: Running
) -> None:
    db = server.services.db
    user = await _user(client, server)
    await bans.create(db, user, bans.MANUAL, None, timedelta(seconds=1))
    # Instead of waiting 2 s: move the ban's expiry into the past.
    await db.execute(
        "UPDATE user_bans SET expires_at = NOW() - INTERVAL '1 second' WHERE user_id = $1", user
    )
    assert not await bans.has_active(db, user)
    await bans.create(db, user, bans.MANUAL, None, timedelta(hours=1))
    assert await bans.has_active(db, user)


async def test_scenario_44_second_active_ban_of_a_type_violates_uniqueness(
    client: httpx2.AsyncClient, server: Running
) -> None:
    db = server.services.db
    user = await _user(client, server)
    await bans.create(db, user, bans.MANUAL, None, timedelta(hours=1))
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "INSERT INTO user_bans (user_id, ban_type, expires_at) VALUES ($1, $2, NOW() + INTERVAL '1 hour')",
            user,
            bans.MANUAL,
        )
    assert await bans.count_active(db, user) == 1


async def test_scenario_45_ban_for_duration_twice_is_a_no_op(
    client: httpx2.AsyncClient, server: Running
) -> None:
    db = server.services.db
    user = await _user(client, server)
    assert await bans.ban_for_duration(db, user, bans.NEAR_BALANCE_LOW, "low", timedelta(hours=1))
    first = await db.fetchval("SELECT expires_at FROM user_bans WHERE user_id = $1", user)
    assert not await bans.ban_for_duration(
        db, user, bans.NEAR_BALANCE_LOW, "low", timedelta(hours=2)
    )
    assert await bans.count_active(db, user) == 1
    assert await db.fetchval("SELECT expires_at FROM user_bans WHERE user_id = $1", user) == first
