"""Session lookups cached in the process, kept exact across replicas by PostgreSQL notifications.

Every authenticated request needs its session and its user's ban status. Reading them from the
database costs a round trip on the request path, so found sessions are kept here for a bounded
time (`ttl`), with a bound on their number. They stay exact because the database says when they
change: triggers (migration 0003) send `NOTIFY privchat_auth, '<user id>'` whenever a session or
a ban row is inserted, updated or deleted, by any replica or by hand, and `run()` drops that
user's entries on every replica. The cache is used only while that LISTEN connection is up: it
starts empty, and is bypassed as soon as the connection is lost or the database moves to a new
leader, and emptied once it listens again. Meanwhile what it holds answers only lookups the
database cannot answer at all (`DatabaseUnavailable`: a failover, when no session can change
either), so authenticated reads and streams keep working through a leader election.

A lookup that raced a change is never cached: each notification bumps `generation`, and a
database read is stored only if no notification arrived while it ran (PostgreSQL notifies after
the change is visible, so a read that starts after the notification sees the change).

Unknown tokens are not cached, so guessing tokens cannot fill the cache. Expiry and ban ends are
checked against the clock on each use.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

import trio

from ..store import Database
from ..store.db import DatabaseUnavailable
from . import sessions

log = logging.getLogger(__name__)

CHANNEL = "privchat_auth"
SYNC_PREFIX = "sync:"
HEALTH_PERIOD = 30.0  # how often the LISTEN connection proves it still delivers
HEALTH_TIMEOUT = 10.0
STABLE_SECONDS = 5.0  # a LISTEN connection lost sooner than this is retried with backoff


class SessionCache:
    def __init__(
        self,
        ttl: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        self.ttl = ttl
        self.health_timeout = health_timeout
        self.max_entries = max_entries
        self._clock = clock
        self.listening = False
        self._listening_changed = trio.Event()
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self.outage_hits = 0
        self._entries: OrderedDict[str, tuple[float, sessions.Session]] = OrderedDict()
        self._by_user: dict[uuid.UUID, set[str]] = {}
        self._syncs: dict[str, trio.Event] = {}

    @property
    def active(self) -> bool:
        return self.listening and self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    async def find(self, db: Database, token: str) -> sessions.Session | None:
        """The session of `token` (with its ban status), from memory when that is exact."""
        token_hash = sessions.hash_token(token)
        if self.active:
            cached = self._get(token_hash)
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
        generation = self.generation
        try:
            session = await sessions.find_by_hash(db, token_hash)
        except DatabaseUnavailable:
            cached = self._get(token_hash)
            if cached is None:
                raise
            self.outage_hits += 1
            return cached
        if session is not None and self.active and generation == self.generation:
            self._put(token_hash, session)
        return session

    def _get(self, token_hash: str) -> sessions.Session | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        stored_at, session = entry
        if self._clock() - stored_at > self.ttl:
            self._drop(token_hash)
            return None
        self._entries.move_to_end(token_hash)
        return session

    def _put(self, token_hash: str, session: sessions.Session) -> None:
        self._drop(token_hash)
        self._entries[token_hash] = (self._clock(), session)
        self._by_user.setdefault(session.user_id, set()).add(token_hash)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, token_hash: str) -> None:
        entry = self._entries.pop(token_hash, None)
        if entry is None:
            return
        user_id = entry[1].user_id
        hashes = self._by_user.get(user_id)
        if hashes is not None:
            hashes.discard(token_hash)
            if not hashes:
                del self._by_user[user_id]

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drop everything cached for `user_id` (its sessions or bans changed)."""
        self.generation += 1
        for token_hash in self._by_user.pop(user_id, ()):
            self._entries.pop(token_hash, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_user.clear()

    def _notified(self, payload: str) -> None:
        if payload.startswith(SYNC_PREFIX):
            done = self._syncs.pop(payload, None)
            if done is not None:
                done.set()
            return
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            self.clear()  # not ours to understand: be safe
            return
        self.forget_user(user_id)

    async def run(self, db: Database) -> None:
        """The listener (supervised): LISTEN, use the cache while listening; when the connection
        is lost or the database moves, give the cache up and listen again at once. Failing to
        connect raises, and the supervisor retries with backoff.

        Before caching, and every `HEALTH_PERIOD` after, a notification sent through the pool
        must come back on the LISTEN connection within `health_timeout`. It would not behind a
        transaction-pooling proxy, or with the pool and the listener on different servers; then
        the cache stays off.
        """
        while True:
            started = trio.current_time()
            async with db.listen(CHANNEL, self._notified) as listening:
                try:
                    with trio.move_on_after(self.health_timeout):
                        await self._round_trip(db)
                        self.clear()
                        self._set_listening(True)
                    if not self.listening:
                        raise ConnectionError("notifications do not reach the LISTEN connection")
                    log.info("session cache listening", extra={"ttl_s": self.ttl})
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._check_health, db, listening.lost)
                        await listening.lost.wait()
                        nursery.cancel_scope.cancel()
                finally:
                    self._set_listening(False)  # entries stay, for a database outage only
                    for done in self._syncs.values():
                        done.set()  # nothing is cached now, so nothing is stale
                    self._syncs.clear()
            if trio.current_time() - started < STABLE_SECONDS:
                raise ConnectionError("session cache LISTEN connection keeps ending")  # backoff
            log.warning("session cache LISTEN connection lost; listening again")

    def _set_listening(self, value: bool) -> None:
        self.listening = value
        self._listening_changed.set()
        self._listening_changed = trio.Event()

    async def wait_listening(self) -> None:
        """Return once the cache is listening (startup readiness, tests)."""
        while not self.listening:
            await self._listening_changed.wait()

    async def _check_health(self, db: Database, lost: trio.Event) -> None:
        while True:
            await trio.sleep(HEALTH_PERIOD)
            with trio.move_on_after(self.health_timeout):
                try:
                    await self._round_trip(db)
                    continue
                except Exception:
                    pass
            lost.set()
            return

    async def _round_trip(self, db: Database) -> None:
        """Send a marker through the pool and wait for it on the LISTEN connection.
        Notifications arrive in commit order, so it arrives after every earlier change."""
        marker = f"{SYNC_PREFIX}{uuid.uuid4().hex}"
        done = self._syncs[marker] = trio.Event()
        try:
            await db.execute("SELECT pg_notify($1, $2)", CHANNEL, marker)
            await done.wait()
        finally:
            self._syncs.pop(marker, None)

    async def synced(self, db: Database) -> None:
        """Return once every change committed before this call has reached this cache."""
        if self.listening:
            await self._round_trip(db)
