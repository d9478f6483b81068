"""Cross-replica change notifications for the per-process caches other than sessions.

Migration 0005 makes PostgreSQL send `NOTIFY privchat_changes, '<kind>:<key>'` on commit of
every change to what a process keeps in memory: `model:<model id>` for a `models` row (admin
model settings), `vpc:` when the stored VPC key is deleted (revoke). However the change is made
(through any replica, or by hand in SQL), every replica hears it over its LISTEN connection and
the subscriber of that kind drops the entry at once.

While nothing is heard (not yet listening, connection lost, the database moved to a new leader),
notifications may be missed: `listening` tells caches that their entries are not exact then
(they keep them, to answer only while the database cannot answer at all), and subscribers are
told to `reset` (drop everything) each time the feed listens anew. A payload of an unknown kind
resets everything.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..store import Database

log = logging.getLogger(__name__)

CHANNEL = "privchat_changes"
SYNC_KIND = "sync"  # a marker of `synced()`, not a change
STABLE_SECONDS = 5.0  # a LISTEN connection lost sooner than this is retried with backoff


@dataclass(frozen=True)
class Subscriber:
    on_change: Callable[[str], None]  # the key of one changed entry
    reset: Callable[[], None]  # drop everything: changes may have been missed


class ChangeFeed:
    def __init__(self) -> None:
        self.listening = False
        self._listening_changed = trio.Event()
        self.received = 0
        self._subscribers: dict[str, Subscriber] = {}
        self._syncs: dict[str, trio.Event] = {}

    def subscribe(
        self, kind: str, on_change: Callable[[str], None], reset: Callable[[], None]
    ) -> None:
        self._subscribers[kind] = Subscriber(on_change, reset)

    def _reset(self) -> None:
        for subscriber in self._subscribers.values():
            subscriber.reset()

    def _notified(self, payload: str) -> None:
        self.received += 1
        kind, _, key = payload.partition(":")
        if kind == SYNC_KIND:
            done = self._syncs.pop(key, None)
            if done is not None:
                done.set()
            return
        subscriber = self._subscribers.get(kind)
        if subscriber is None:
            self._reset()  # not ours to understand: be safe
        else:
            subscriber.on_change(key)

    async def run(self, db: Database) -> None:
        """The listener (supervised): LISTEN until the connection is lost or the database moves,
        then listen again at once. Failing to connect raises; the supervisor retries with backoff."""
        while True:
            started = trio.current_time()
            async with db.listen(CHANNEL, self._notified) as listening:
                try:
                    self._reset()  # what changed before this connection listened is unknown
                    self._set_listening(True)
                    await listening.lost.wait()
                finally:
                    self._set_listening(False)
                    for done in self._syncs.values():
                        done.set()  # caches are bypassed now: nothing they hold is used
                    self._syncs.clear()
            if trio.current_time() - started < STABLE_SECONDS:
                raise ConnectionError("change feed LISTEN connection keeps ending")  # backoff
            log.warning("change feed LISTEN connection lost; listening again")

    def _set_listening(self, value: bool) -> None:
        self.listening = value
        self._listening_changed.set()
        self._listening_changed = trio.Event()

    async def wait_listening(self) -> None:
        """Return once the feed listens (startup, tests)."""
        while not self.listening:
            await self._listening_changed.wait()

    async def synced(self, db: Database) -> None:
        """Return once every change committed before this call has reached the subscribers
        (a marker sent through the pool comes back after them: notifications keep commit order)."""
        if not self.listening:
            return
        marker = uuid.uuid4().hex
        done = self._syncs[marker] = trio.Event()
        try:
            await db.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{SYNC_KIND}:{marker}")
            await done.wait()
        finally:
            self._syncs.pop(marker, None)
