"""The activity writer: `user_activity_log` rows are queued off the request path and written in batches.

`record()` never blocks and never fails a request: when the queue is full the row is dropped
and counted. The writer waits `linger` seconds after a first row for others to join its batch,
so under load rows go in few statements and the writes stay out of the requests' way. On
shutdown the queue is drained before the pool closes.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio

from ..store import Database

log = logging.getLogger(__name__)

ACTIVITY_TYPES = ("login", "signup", "response", "conversation", "file_upload")


@dataclass(frozen=True)
class Activity:
    user_id: uuid.UUID
    activity_type: str
    auth_method: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None


class ActivityWriter:
    def __init__(
        self, db: Database, *, capacity: int = 10_000, batch: int = 500, linger: float = 0.25
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
        them in one statement, repeat."""
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
            try:
                await self._write(rows)
            finally:
                self._done(len(rows))

    async def _write(self, rows: list[Activity]) -> None:
        try:
            await self._db.executemany(
                "INSERT INTO user_activity_log"
                " (user_id, activity_type, auth_method, metadata, created_at)"
                " SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)",
                [
                    (r.user_id, r.activity_type, r.auth_method, r.metadata, r.created_at)
                    for r in rows
                ],
            )
            self.written += len(rows)
            self.batches += 1
        except Exception:
            # A failed batch is retried once row by row so one bad row cannot sink the rest.
            log.warning("activity batch failed; retrying row by row", extra={"count": len(rows)})
            for row in rows:
                try:
                    await self._db.executemany(
                        "INSERT INTO user_activity_log"
                        " (user_id, activity_type, auth_method, metadata, created_at)"
                        " VALUES ($1, $2, $3, $4, $5)",
                        [
                            (
                                row.user_id,
                                row.activity_type,
                                row.auth_method,
                                row.metadata,
                                row.created_at,
                            )
                        ],
                    )
                    self.written += 1
                except Exception:
                    self.dropped += 1

    async def flush(self) -> None:
        """Wait until everything queued so far is written (tests use this)."""
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
        if rows:
            try:
                await self._write(rows)
            finally:
                self._done(len(rows))
