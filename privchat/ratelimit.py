"""The `/v1/responses` rate limiter (api.md §2.7.2): pure arithmetic plus per-process state.

Per user id, in memory: a sliding window of at most `WINDOW_MAX` accepted requests per
`WINDOW_SECONDS`, then at most `MAX_IN_FLIGHT` requests in flight. The window is checked first;
a rejected request consumes nothing. The in-flight slot is held until the handler has the
response head (the caller releases it), not until the body ends. Idle state is purged lazily.

`decide()` is pure: it takes a user's state and the current time and says what to do.
`RateLimiter` keeps the states and hands out `Slot`s.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_SECONDS = 1.0
WINDOW_MAX = 1
MAX_IN_FLIGHT = 2
IDLE_PURGE_SECONDS = 3600.0
PURGE_EVERY = 1024  # purge at most once per this many checks


@dataclass
class UserState:
    accepted: deque[float] = field(default_factory=deque)  # monotonic seconds, oldest first
    in_flight: int = 0
    last_seen: float = 0.0


@dataclass(frozen=True)
class Rejection:
    """A 429: the E-RATE body and the D16 `Retry-After` seconds."""

    message: str
    retry_after_ms: int | None

    @property
    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.message}
        if self.retry_after_ms is not None:
            body["retry_after_ms"] = self.retry_after_ms
        return body

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds, rounded up (D16); at least 1."""
        if self.retry_after_ms is None:
            return 1
        return max(1, math.ceil(self.retry_after_ms / 1000))


def prune(state: UserState, now: float, window: float = WINDOW_SECONDS) -> None:
    """Drop timestamps strictly older than the window."""
    while state.accepted and now - state.accepted[0] > window:
        state.accepted.popleft()


def decide(
    state: UserState,
    now: float,
    *,
    window: float = WINDOW_SECONDS,
    window_max: int = WINDOW_MAX,
    max_in_flight: int = MAX_IN_FLIGHT,
) -> Rejection | None:
    """None to accept (the caller then records `now` and takes a slot), else the rejection."""
    prune(state, now, window)
    if len(state.accepted) >= window_max:
        elapsed_ms = int((now - state.accepted[0]) * 1000)
        ms = max(0, int(window * 1000) - elapsed_ms)
        return Rejection(f"Rate limit exceeded. Please retry after {ms}ms.", ms)
    if state.in_flight >= max_in_flight:
        return Rejection("Too many concurrent requests. Please try again shortly.", None)
    return None


def idle(state: UserState, now: float, idle_seconds: float = IDLE_PURGE_SECONDS) -> bool:
    prune(state, now)
    return not state.accepted and state.in_flight == 0 and now - state.last_seen > idle_seconds


class Slot:
    """An accepted request's in-flight slot; `release()` is idempotent."""

    def __init__(self, state: UserState) -> None:
        self._state: UserState | None = state

    def release(self) -> None:
        if self._state is not None:
            self._state.in_flight -= 1
            self._state = None


class RateLimiter:
    def __init__(
        self,
        *,
        window: float = WINDOW_SECONDS,
        window_max: int = WINDOW_MAX,
        max_in_flight: int = MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.window_max = window_max
        self.max_in_flight = max_in_flight
        self.clock = clock
        self.users: dict[uuid.UUID, UserState] = {}
        self._checks = 0

    def acquire(self, user_id: uuid.UUID) -> Slot | Rejection:
        now = self.clock()
        self._maybe_purge(now)
        state = self.users.get(user_id)
        if state is None:
            state = self.users[user_id] = UserState()
        state.last_seen = now
        rejection = decide(
            state,
            now,
            window=self.window,
            window_max=self.window_max,
            max_in_flight=self.max_in_flight,
        )
        if rejection is not None:
            return rejection
        state.accepted.append(now)
        state.in_flight += 1
        return Slot(state)

    def _maybe_purge(self, now: float) -> None:
        self._checks += 1
        if self._checks % PURGE_EVERY:
            return
        for user_id in [u for u, s in self.users.items() if idle(s, now)]:
            del self.users[user_id]
