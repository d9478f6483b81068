"""Supervised background workers: a crash is logged and the worker restarts with backoff."""

from __future__ import annotations

import logging

import pytest
import trio

from privchat.services.supervisor import every, supervise


async def test_crashed_worker_restarts_with_growing_backoff(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    starts: list[float] = []
    done = trio.Event()

    async def worker() -> None:
        starts.append(trio.current_time())
        if len(starts) <= 3:
            raise RuntimeError("boom")
        done.set()
        await trio.sleep_forever()

    caplog.set_level(logging.WARNING, logger="privchat.services.supervisor")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: supervise("flaky", worker, initial_backoff=1.0))
        await done.wait()
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 3) for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == [1.0, 2.0, 4.0]
    crashes = [r for r in caplog.records if r.getMessage() == "background worker crashed"]
    assert len(crashes) == 3 and all(r.worker == "flaky" for r in crashes)


async def test_worker_that_returns_is_not_restarted(autojump_clock: trio.abc.Clock) -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    with trio.fail_after(100):
        await supervise("once", once)
    assert runs == 1


async def test_every_runs_periodically(autojump_clock: trio.abc.Clock) -> None:
    times: list[float] = []

    async def job() -> None:
        times.append(trio.current_time())

    with trio.move_on_after(35):
        await every(10, job, first=5)
    assert [round(t) for t in times] == [5, 15, 25]
