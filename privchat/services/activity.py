"""The activity writer: `user_activity_log` rows are queued off the request path and written in batches.

`record()` never blocks and never fails a request: when the queue is full the row is dropped
and counted. The writer waits `linger` seconds after a first row for others to join its batch,
so under load rows go in few statements and the writes stay out of the requests' way. On
shutdown the queue is drained before the pool closes.

Rows that cannot be written because the database is away (down, restarting, failing over) are
held in a bounded retry queue and written once it is back, retried with a growing delay. When
that queue is full the oldest rows are dropped: counted in `dropped` (exported in `/metrics`),
with one log line per outage. A row the database rejects is dropped and counted at once.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio

from ..store import Database
from ..store.db import unavailable

log = logging.getLogger(__name__)

ACTIVITY_TYPES = ("login", "signup", "response", "conversation", "file_upload")


@dataclass(frozen=True)
class Activity:
    user_id: uuid.UUID
    activity_type: str
    auth_method: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None


_INSERT = (
    "INSERT INTO user_activity_log (user_id, activity_type, auth_method, metadata, created_at)"
)


def _values(row: Activity) -> tuple[Any, ...]:
    return (row.user_id, row.activity_type, row.auth_method, row.metadata, row.created_at)


class ActivityWriter:
    def __init__(
        self,
        db: Database,
        *,
        capacity: int = 10_000,
        batch: int = 500,
        linger: float = 0.25,
        retry_capacity: int = 10_000,
        retry_delays: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self._db = db
        self._send, self._receive = trio.open_memory_channel[Activity](capacity)
        self._batch = batch
        self._linger = linger
        self._lingering = trio.CancelScope()
        self._hurry = False  # a flush is waiting: do not linger
        self.dropped = 0
        self.written = 0
        self.batches = 0
        self._pending = 0
        self._settled = trio.Event()
        self._settled.set()
        self._held: deque[Activity] = deque()  # waiting for the database to come back
        self._retry_capacity = retry_capacity
        self._retry_delays = retry_delays
        self._holding = trio.Event()
        self._overflowed = False  # logged once per outage

    @property
    def held(self) -> int:
        """Rows waiting for the database to come back."""
        return len(self._held)

    async def wait_holding(self) -> None:
        """Return once rows are held for the database to come back."""
        await self._holding.wait()

    def record(
        self,
        user_id: uuid.UUID,
        activity_type: str,
        *,
        auth_method: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        assert activity_type in ACTIVITY_TYPES, activity_type
        row = Activity(user_id, activity_type, auth_method, metadata, datetime.now(UTC))
        try:
            self._send.send_nowait(row)
        except trio.WouldBlock:
            self.dropped += 1
            log.warning("activity queue full, row dropped", extra={"dropped": self.dropped})
            return
        self._pending += 1
        if self._settled.is_set():
            self._settled = trio.Event()

    def _done(self, count: int) -> None:
        self._pending -= count
        if self._pending == 0:
            self._hurry = False
            self._settled.set()

    async def run(self) -> None:
        """The worker: take a row, gather more for `linger` seconds (or a full batch), write
        them in one statement, repeat; held rows are retried alongside."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._retry_held)
            await self._take_and_write()

    async def _take_and_write(self) -> None:
        while True:
            rows = [await self._receive.receive()]
            # Let rows gather without waking up for each (a full batch is written at once).
            if self._receive.statistics().current_buffer_used < self._batch and not self._hurry:
                with trio.move_on_after(self._linger) as self._lingering:
                    await trio.sleep_forever()
            while len(rows) < self._batch:
                try:
                    rows.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._write(rows)

    async def _retry_held(self) -> None:
        """Write held rows, oldest first, as soon as the database takes them again."""
        first, longest = self._retry_delays
        delay = first
        while True:
            await self._holding.wait()
            await trio.sleep(delay)
            rows = [self._held.popleft() for _ in range(min(self._batch, len(self._held)))]
            if await self._write(rows, again=True):
                delay = first
            else:
                delay = min(delay * 2, longest)
            if not self._held:
                self._holding = trio.Event()
                if self._overflowed:
                    self._overflowed = False
                    log.info("activity rows written again", extra={"dropped": self.dropped})

    async def _write(self, rows: list[Activity], again: bool = False) -> bool:
        """Write `rows`; those the database rejects are dropped. Returns False when the
        database is away: then the rows not written are held (`again`: at the front)."""
        try:
            await self._db.executemany(
                f"{_INSERT} SELECT $1, $2, $3, $4, $5"
                " WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)",
                [_values(r) for r in rows],
            )
        except trio.Cancelled:  # shutting down: `drain()` tries them once more
            self._hold(rows, front=True)
            raise
        except Exception as error:
            if unavailable(error):
                self._hold(rows, again)
                return False
        else:
            self.written += len(rows)
            self.batches += 1
            self._done(len(rows))
            return True
        # A rejected batch is retried row by row so one bad row cannot sink the rest.
        log.warning("activity batch failed; retrying row by row", extra={"count": len(rows)})
        for i, row in enumerate(rows):
            try:
                await self._db.executemany(f"{_INSERT} VALUES ($1, $2, $3, $4, $5)", [_values(row)])
                self.written += 1
            except trio.Cancelled:
                self._hold(rows[i:], front=True)
                raise
            except Exception as error:
                if unavailable(error):
                    self._hold(rows[i:], again)
                    return False
                self.dropped += 1
            self._done(1)
        return True

    def _hold(self, rows: list[Activity], front: bool) -> None:
        if front:
            self._held.extendleft(reversed(rows))
        else:
            self._held.extend(rows)
        self._holding.set()
        over = len(self._held) - self._retry_capacity
        if over > 0:
            for _ in range(over):
                self._held.popleft()
            self.dropped += over
            self._done(over)
            if not self._overflowed:
                self._overflowed = True
                log.warning(
                    "activity retry queue full, dropping the oldest rows",
                    extra={"dropped": self.dropped},
                )

    async def flush(self) -> None:
        """Wait until everything queued so far is written or dropped (tests use this)."""
        while self._pending:
            self._hurry = True
            self._lingering.cancel()  # write what is gathered now
            await self._settled.wait()

    async def drain(self) -> None:
        """Write whatever is still queued; called at shutdown after the server stopped."""
        rows: list[Activity] = []
        while True:
            try:
                rows.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        rows.extend(self._held)
        self._held.clear()
        if rows:
            await self._write(rows)  # one attempt; rows still not written are lost with the process
