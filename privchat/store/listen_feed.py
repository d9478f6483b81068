"""A LISTEN channel that proves it delivers, the base of every cross-replica cache invalidation.

A subclass names its `channel` and says what a payload means (`_changed`) and what to do when
notifications may have been missed (`_relistened`: drop everything). `run()` (supervised) LISTENs
over a connection of its own and sets `listening` only once a marker sent through the pool has
come back on that connection, so a cache never trusts a connection that does not deliver (a
transaction-pooling proxy, the pool and the listener on different servers, a half-open TCP
connection). Every `HEALTH_PERIOD` a marker must come back within `health_timeout`, or the
connection counts as lost. When it is lost or the database moves to a new leader, `listening`
turns off at once and the feed listens again; a connection that keeps ending sooner than
`STABLE_SECONDS` raises, so the supervisor retries with backoff.

Notifications arrive in commit order, so `synced()` (a marker's round trip) returns only after
every change committed before it has been handled.
"""

from __future__ import annotations

import logging
import uuid

import trio

from .db import Database

log = logging.getLogger(__name__)

SYNC_PREFIX = "sync:"  # a marker's payload, never a change
HEALTH_PERIOD = 30.0  # how often the LISTEN connection proves it still delivers
HEALTH_TIMEOUT = 10.0
STABLE_SECONDS = 5.0  # a LISTEN connection lost sooner than this is retried with backoff


class ListenFeed:
    channel: str
    name: str  # for log lines
    health_period = HEALTH_PERIOD

    def __init__(self, health_timeout: float = HEALTH_TIMEOUT) -> None:
        self.health_timeout = health_timeout
        self.listening = False
        self._listening_changed = trio.Event()
        self._syncs: dict[str, trio.Event] = {}

    def _changed(self, payload: str) -> None:
        """One notification that is not a marker."""
        raise NotImplementedError

    def _relistened(self) -> None:
        """Listening anew: changes may have been missed meanwhile."""
        raise NotImplementedError

    def _notified(self, payload: str) -> None:
        if payload.startswith(SYNC_PREFIX):
            done = self._syncs.pop(payload, None)
            if done is not None:
                done.set()
        else:
            self._changed(payload)

    async def run(self, db: Database) -> None:
        while True:
            started = trio.current_time()
            async with db.listen(self.channel, self._notified) as listening:
                try:
                    with trio.move_on_after(self.health_timeout):
                        await self._round_trip(db)
                        self._relistened()
                        self._set_listening(True)
                    if not self.listening:
                        raise ConnectionError("notifications do not reach the LISTEN connection")
                    log.info("%s listening", self.name)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._check_health, db, listening.lost)
                        await listening.lost.wait()
                        nursery.cancel_scope.cancel()
                finally:
                    self._set_listening(False)
                    for done in self._syncs.values():
                        done.set()  # nothing is trusted now, so nothing waits on it
                    self._syncs.clear()
            if trio.current_time() - started < STABLE_SECONDS:
                raise ConnectionError(f"{self.name} LISTEN connection keeps ending")  # backoff
            log.warning("%s LISTEN connection lost; listening again", self.name)

    def _set_listening(self, value: bool) -> None:
        self.listening = value
        self._listening_changed.set()
        self._listening_changed = trio.Event()

    async def wait_listening(self) -> None:
        """Return once the feed listens (startup readiness, tests)."""
        while not self.listening:
            await self._listening_changed.wait()

    async def _check_health(self, db: Database, lost: trio.Event) -> None:
        while True:
            await trio.sleep(self.health_period)
            with trio.move_on_after(self.health_timeout):
                try:
                    await self._round_trip(db)
                    continue
                except Exception:
                    pass
            log.warning("%s LISTEN connection did not deliver a marker in time", self.name)
            lost.set()
            return

    async def _round_trip(self, db: Database) -> None:
        """Send a marker through the pool and wait for it on the LISTEN connection."""
        marker = f"{SYNC_PREFIX}{uuid.uuid4().hex}"
        done = self._syncs[marker] = trio.Event()
        try:
            await db.execute("SELECT pg_notify($1, $2)", self.channel, marker)
            await done.wait()
        finally:
            self._syncs.pop(marker, None)

    async def synced(self, db: Database) -> None:
        """Return once every change committed before this call has been handled here (at once
        when not listening: nothing is trusted then)."""
        if self.listening:
            await self._round_trip(db)
