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

from ..store import Database
from ..store.db import DatabaseUnavailable
from ..store.listen_feed import HEALTH_TIMEOUT, ListenFeed
from . import sessions

log = logging.getLogger(__name__)

CHANNEL = "privchat_auth"


class SessionCache(ListenFeed):
    channel = CHANNEL
    name = "session cache"

    def __init__(
        self,
        ttl: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        super().__init__(health_timeout)
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self.outage_hits = 0
        self._entries: OrderedDict[str, tuple[float, sessions.Session]] = OrderedDict()
        self._by_user: dict[uuid.UUID, set[str]] = {}

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

    def _relistened(self) -> None:
        self.clear()

    def _changed(self, payload: str) -> None:
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            self.clear()  # not ours to understand: be safe
            return
        self.forget_user(user_id)
