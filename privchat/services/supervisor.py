"""Supervised background workers: a crashed worker is logged and restarted with backoff."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger(__name__)


async def supervise(
    name: str,
    worker: Callable[[], Awaitable[None]],
    *,
    initial_backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> None:
    """Run `worker` forever. Returns only when cancelled.

    A worker that returns normally is done (no restart). A worker that raises is restarted after
    a backoff that doubles up to `max_backoff` and resets once the worker ran for a minute.
    """
    backoff = initial_backoff
    while True:
        started = trio.current_time()
        try:
            await worker()
            return
        except Exception:
            log.exception("background worker crashed", extra={"worker": name})
        if trio.current_time() - started > 60:
            backoff = initial_backoff
        log.warning("restarting background worker", extra={"worker": name, "in_s": backoff})
        await trio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2) if math.isfinite(backoff) else max_backoff


async def every(period: float, job: Callable[[], Awaitable[None]], *, first: float = 0.0) -> None:
    """Run `job` every `period` seconds (after `first`), forever; for use under `supervise`."""
    await trio.sleep(first)
    while True:
        await job()
        await trio.sleep(period)
