"""The per-process model-settings cache of `/v1/responses` (api.md §2.7.1 step 6, 60 s TTL).

A miss reads the `models` row; unknown models are cached as `exists=False` (public, no prompt).
Kept exact across replicas by the change feed (`services/changes.py`): a change to a `models`
row, made through any replica or in SQL, drops that entry on every replica as it commits. While
the feed is not listening the cache is bypassed (every lookup reads the row), except that an
entry still answers when the database cannot answer at all (a failover, when no admin can change
a model either). A read that raced a change is not kept (`generation`, as in the session cache).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..store import Database
from ..store import models as store
from ..store.db import DatabaseUnavailable
from .changes import ChangeFeed

TTL_SECONDS = 60.0
MAX_ENTRIES = 10_000
KIND = "model"


@dataclass(frozen=True)
class Entry:
    exists: bool
    public: bool
    system_prompt: str | None
    cached_at: float


class ModelSettingsCache:
    def __init__(
        self,
        db: Database,
        *,
        feed: ChangeFeed | None = None,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Without a `feed` (tests), entries live for `ttl` and only local writes drop them."""
        self._db = db
        self._feed = feed
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self.generation = 0
        if feed is not None:
            feed.subscribe(KIND, self._changed, self.clear)

    @property
    def exact(self) -> bool:
        return self._feed is None or self._feed.listening

    def _fresh(self, model_id: str) -> Entry | None:
        entry = self._entries.get(model_id)
        if entry is not None and self._clock() - entry.cached_at < self._ttl:
            return entry
        return None

    def cached(self, model_id: str) -> Entry | None:
        return self._fresh(model_id) if self.exact else None

    async def lookup(self, model_id: str) -> tuple[Entry, bool]:
        """(entry, cache hit). DB errors propagate."""
        entry = self.cached(model_id)
        if entry is not None:
            return entry, True
        generation = self.generation
        try:
            settings = await store.get(self._db, model_id)
        except DatabaseUnavailable:
            entry = self._entries.get(model_id)
            if entry is None:
                raise
            return entry, True
        now = self._clock()
        if settings is None:
            entry = Entry(False, True, None, now)
        else:
            entry = Entry(True, settings.public, settings.system_prompt, now)
        if self.exact and generation == self.generation:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[model_id] = entry
        return entry, False

    def invalidate(self, model_id: str) -> None:
        self.generation += 1
        self._entries.pop(model_id, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def _changed(self, model_id: str) -> None:
        if model_id:
            self.invalidate(model_id)
        else:
            self.clear()  # an id too long for a notification
