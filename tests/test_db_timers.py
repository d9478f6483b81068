"""Cancelled asyncio timers do not pile up (issue 14, finding 1).

asyncpg schedules a command timeout per query and an idle timeout per pool release with
`loop.call_later`, and cancels them when the query finishes. trio-asyncio's loop kept every
cancelled handle (with the context it captured) until it would have fired: 60 s and 300 s later.
"""

from __future__ import annotations

import asyncio
import gc

import trio_asyncio

from privchat.store import Database

QUERIES = 1000


def _cancelled_timers() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.TimerHandle) and o.cancelled())


async def test_cancelled_timers_do_not_accumulate(database_url: str) -> None:
    async with trio_asyncio.open_loop():
        db = await Database.connect(database_url, max_size=2)
        try:
            await db.fetchval("SELECT 1")
            before = _cancelled_timers()
            for i in range(QUERIES):
                assert await db.fetchval("SELECT $1::int", i) == i
                async with db.connection() as conn:
                    await conn.fetchval("SELECT 1")
            # Each round scheduled and cancelled at least three timers (two command timeouts,
            # one idle timeout): without the fix, 3,000 stay alive here.
            assert _cancelled_timers() - before < 300
        finally:
            await db.close()
