"""Idle timeouts for upstream socket reads without a Trio cancel scope per read.

A streamed response waits for its socket once per token event, and `trio.fail_after` around each
wait costs about as much as the rest of the read (a cancel scope, its status, a deadline in the
run's heap, a context manager: ~8-10 µs of the ~110 µs privchat spends per relayed event). Here a
waiting read only notes its deadline in a dict (`ReadDeadlines.waiting`), and one system task per
Trio run sleeps until the earliest noted deadline. A read still waiting at its deadline is woken
with `trio.lowlevel.notify_closing` on its socket (the socket stays open: the waiter sees
`trio.ClosedResourceError`) after being marked as expired, so the reader raises its timeout
error, as after `fail_after`. Streams that keep receiving data never wake the task: a deadline is
`timeout` seconds after its wait started, so the task wakes about once per `timeout` while reads
are waiting, and not at all when none are.
"""

from __future__ import annotations

import math
from typing import Protocol

import trio


class Waiter(Protocol):
    def expire(self) -> None:
        """The wait outlived its deadline: mark it and wake it (`notify_closing` its socket)."""


class ReadDeadlines:
    """The deadlines of the reads now waiting, and the task that expires them."""

    def __init__(self) -> None:
        self.waiting: dict[Waiter, float] = {}
        self._wake_at = math.inf
        self._sleep: trio.CancelScope | None = None

    def add(self, waiter: Waiter, deadline: float) -> None:
        self.waiting[waiter] = deadline
        if deadline < self._wake_at:  # the first waiter, or a shorter timeout than the others
            self._wake_at = deadline
            if self._sleep is not None:
                self._sleep.deadline = deadline

    def discard(self, waiter: Waiter) -> None:
        self.waiting.pop(waiter, None)

    async def run(self) -> None:
        while True:
            with trio.CancelScope(deadline=self._wake_at) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None
            now = trio.current_time()
            due = [waiter for waiter, deadline in self.waiting.items() if deadline <= now]
            for waiter in due:
                del self.waiting[waiter]
                waiter.expire()
            self._wake_at = min(self.waiting.values(), default=math.inf)


_CURRENT: trio.lowlevel.RunVar[ReadDeadlines] = trio.lowlevel.RunVar("privchat_read_deadlines")


def current() -> ReadDeadlines:
    """This Trio run's deadlines (its task is started on first use)."""
    try:
        return _CURRENT.get()
    except LookupError:
        deadlines = ReadDeadlines()
        _CURRENT.set(deadlines)
        trio.lowlevel.spawn_system_task(deadlines.run, name="privchat upstream read deadlines")
        return deadlines
