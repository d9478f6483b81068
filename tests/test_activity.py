"""The activity writer batches rows off the request path: a row waits up to `linger` for others,
and `flush()` writes what is gathered at once."""

from __future__ import annotations

import hashlib

import httpx2
import trio
import trio.testing

from privchat.runtime import Running
from privchat.services.activity import ActivityWriter

from .conftest import login


async def test_rows_recorded_while_lingering_share_one_statement(
    client: httpx2.AsyncClient, server: Running
) -> None:
    db = server.services.db
    token = await login(client)
    user_id = await db.fetchval(
        "SELECT user_id FROM sessions WHERE token_hash = $1",
        hashlib.sha256(token.encode()).hexdigest(),
    )
    writer = ActivityWriter(db, linger=600)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        writer.record(user_id, "response")
        await trio.testing.wait_all_tasks_blocked()  # the writer holds the row and lingers
        assert writer.written == 0
        writer.record(user_id, "conversation")
        with trio.fail_after(10):  # far less than the linger
            await writer.flush()
        assert (writer.written, writer.batches) == (2, 1)
        nursery.cancel_scope.cancel()
    types = await db.fetch(
        "SELECT activity_type FROM user_activity_log WHERE user_id = $1"
        " AND activity_type IN ('response', 'conversation') ORDER BY created_at",
        user_id,
    )
    assert [r["activity_type"] for r in types] == ["response", "conversation"]
