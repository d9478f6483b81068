"""The per-process model-settings cache of `/v1/responses` (api.md §2.7.1 step 6, 60 s TTL).

A miss reads the `models` row; unknown models are cached as `exists=False` (public, no prompt).
Admin model writes call `invalidate(model_id)` (this process only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..store import Database
from ..store import models as store

TTL_SECONDS = 60.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Entry:
    exists: bool
    public: bool
    system_prompt: str | None
    cached_at: float


class ModelSettingsCache:
    def __init__(
        self, db: Database, *, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, Entry] = {}

    def cached(self, model_id: str) -> Entry | None:
        entry = self._entries.get(model_id)
        if entry is not None and self._clock() - entry.cached_at < self._ttl:
            return entry
        return None

    async def lookup(self, model_id: str) -> tuple[Entry, bool]:
        """(entry, cache hit). DB errors propagate."""
        entry = self.cached(model_id)
        if entry is not None:
            return entry, True
        settings = await store.get(self._db, model_id)
        now = self._clock()
        if settings is None:
            entry = Entry(False, True, None, now)
        else:
            entry = Entry(True, settings.public, settings.system_prompt, now)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[model_id] = entry
        return entry, False

    def invalidate(self, model_id: str) -> None:
        self._entries.pop(model_id, None)
