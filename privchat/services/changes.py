"""Cross-replica change notifications for the per-process caches other than sessions.

Migration 0005 makes PostgreSQL send `NOTIFY privchat_changes, '<kind>:<key>'` on commit of
every change to what a process keeps in memory: `model:<model id>` for a `models` row (admin
model settings), `vpc:` when the stored VPC key is deleted (revoke). However the change is made
(through any replica, or by hand in SQL), every replica hears it over its LISTEN connection and
the subscriber of that kind drops the entry at once.

While nothing is heard (not yet listening, connection lost or not delivering, the database moved
to a new leader), notifications may be missed: `listening` tells caches that their entries are not
exact then (they keep them, to answer only while the database cannot answer at all), and
subscribers are told to `reset` (drop everything) each time the feed listens anew
(`store/listen_feed.py` keeps the connection honest). A payload of an unknown kind resets
everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..store.listen_feed import HEALTH_TIMEOUT, ListenFeed

CHANNEL = "privchat_changes"


@dataclass(frozen=True)
class Subscriber:
    on_change: Callable[[str], None]  # the key of one changed entry
    reset: Callable[[], None]  # drop everything: changes may have been missed


class ChangeFeed(ListenFeed):
    channel = CHANNEL
    name = "change feed"

    def __init__(self, health_timeout: float = HEALTH_TIMEOUT) -> None:
        super().__init__(health_timeout)
        self._subscribers: dict[str, Subscriber] = {}

    def subscribe(
        self, kind: str, on_change: Callable[[str], None], reset: Callable[[], None]
    ) -> None:
        self._subscribers[kind] = Subscriber(on_change, reset)

    def _relistened(self) -> None:
        for subscriber in self._subscribers.values():
            subscriber.reset()

    def _changed(self, payload: str) -> None:
        kind, _, key = payload.partition(":")
        subscriber = self._subscribers.get(kind)
        if subscriber is None:
            self._relistened()  # not ours to understand: be safe
        else:
            subscriber.on_change(key)
