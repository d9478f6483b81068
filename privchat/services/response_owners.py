"""Owner rows of response ids, written beside the stream instead of before its first event.

When a relayed `/v1/responses` answer names its id, `ResponseOwners.record()` registers the id
as pending for its user and starts the `response_owners` INSERT in this service's own nursery,
then returns at once: the first event goes to the client without waiting for a database round
trip. The write is not part of the request, so a client that disconnects right after the first
event does not cancel it.

An ownership check (`owns`: `previous_response_id`, `/v1/signature/{id}`) of an id that is
pending for the same user first waits for its write (at most `OWN_WAIT` seconds), then answers
from the database as before: a client that uses the id as soon as it sees it is never refused.
Another user does not wait (and is refused, as before). A write that fails is logged (the ids
and the error's type, never content) and the id stays unowned, as when it was written inline.

What remains (docs/deviations.md, O2): the registry is per process. A follow-up that lands on
another replica within the write's ~1 ms could still be refused there; HAProxy pins a session
token to one replica (docs/ha.md), so only a failover in that window does this.

Shutdown: leaving `open_response_owners` waits for every pending write; each is shielded from
cancellation and bounded by `WRITE_DEADLINE`, so the rows are written before the pool closes
and the process exits, like queued activity rows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from ..store import responses as response_store
from ..store.db import Database

log = logging.getLogger(__name__)

OWN_WAIT = 5.0  # how long an ownership check waits for a pending write of the same user
WRITE_DEADLINE = 10.0  # one write, shielded from cancellation (shutdown waits for it)


@dataclass
class _Pending:
    user_id: uuid.UUID
    done: trio.Event = field(default_factory=trio.Event)
    waiters: int = 0  # ownership checks waiting for this write


class ResponseOwners:
    def __init__(self, db: Database, nursery: trio.Nursery) -> None:
        self._db = db
        self._nursery = nursery
        self._pending: dict[str, _Pending] = {}
        self._idle = trio.Event()
        self._idle.set()
        self._waiter_joined = trio.Event()
        self.closing = trio.Event()  # set once the service is left: pending writes finish

    @property
    def pending(self) -> int:
        """Writes in flight."""
        return len(self._pending)

    def record(self, response_id: str, user_id: uuid.UUID) -> None:
        """Own `response_id` for `user_id`: registered now, written in the background."""
        entry = _Pending(user_id)
        earlier = self._pending.get(response_id)
        self._pending[response_id] = entry
        if self._idle.is_set():
            self._idle = trio.Event()
        try:
            self._nursery.start_soon(self._write, response_id, entry, earlier)
        except RuntimeError:  # the service is closed: nothing can be in flight any more
            self._settle(response_id, entry)
            self._failed(response_id, entry, "ServiceClosed")

    async def owns(self, response_id: str, user_id: uuid.UUID) -> bool:
        """Does `user_id` own `response_id`? Waits for a pending write of the same user first."""
        entry = self._pending.get(response_id)
        if entry is not None and entry.user_id == user_id:
            entry.waiters += 1
            self._waiter_joined.set()
            self._waiter_joined = trio.Event()
            with trio.move_on_after(OWN_WAIT):
                await entry.done.wait()
        return await response_store.owns(self._db, response_id, user_id)

    async def wait_idle(self) -> None:
        """Return once no write is in flight (tests use this)."""
        await self._idle.wait()

    async def wait_waiters(self, response_id: str, count: int) -> None:
        """Return once `count` checks wait for the pending write of `response_id`, or it is
        done (tests use this)."""
        while (entry := self._pending.get(response_id)) is not None and entry.waiters < count:
            await self._waiter_joined.wait()

    async def _write(self, response_id: str, entry: _Pending, earlier: _Pending | None) -> None:
        try:
            with trio.CancelScope(shield=True), trio.move_on_after(WRITE_DEADLINE) as deadline:
                if earlier is not None:  # the same id named twice: one write after the other
                    await earlier.done.wait()
                try:
                    owned = await response_store.record(self._db, response_id, entry.user_id)
                except Exception as exc:
                    self._failed(response_id, entry, type(exc).__name__)
                    return
                if not owned:
                    log.error(
                        "upstream returned a response id that cannot be owned",
                        extra={"response_id": response_id, "user_id": str(entry.user_id)},
                    )
            if deadline.cancelled_caught:
                self._failed(response_id, entry, "Timeout")
        finally:
            self._settle(response_id, entry)

    @staticmethod
    def _failed(response_id: str, entry: _Pending, error: str) -> None:
        log.error(
            "response ownership not recorded",
            extra={"response_id": response_id, "user_id": str(entry.user_id), "error": error},
        )

    def _settle(self, response_id: str, entry: _Pending) -> None:
        entry.done.set()
        if self._pending.get(response_id) is entry:
            del self._pending[response_id]
        if not self._pending:
            self._idle.set()


@asynccontextmanager
async def open_response_owners(db: Database) -> AsyncIterator[ResponseOwners]:
    """The service; leaving it waits until every pending write is done (see the docstring)."""
    async with trio.open_nursery() as nursery:
        owners = ResponseOwners(db, nursery)
        try:
            yield owners
        finally:
            owners.closing.set()
