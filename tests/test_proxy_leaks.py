"""200 cancelled streams leak nothing: no upstream pool slot, no DB connection, no task; the
pool still serves afterwards (issue 5, "Bad input and faults")."""

from __future__ import annotations

import httpx2
import trio

from tests.conftest import auth, login
from tests.proxyfixtures import JSON, Proxy, body, proxy

__all__ = ["proxy"]

STREAMS = 200
PARALLEL = 25


def _task_names() -> list[str]:
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        names.append(task.name)
        for n in task.child_nurseries:
            for child in n.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return names


def _upstream_pool(p: Proxy) -> object:
    return p.server.services.upstream.client._transport._pool


async def test_200_cancelled_streams_leak_nothing(proxy: Proxy) -> None:
    tokens = [await login(proxy.client) for _ in range(STREAMS)]
    svc = proxy.server.services
    # Warm up once so lazily created things exist before the baseline.
    ok = await proxy.client.post(
        "/v1/responses", content=body(), headers={**JSON, **auth(tokens[0])}
    )
    assert ok.status_code == 200
    await trio.sleep(1.01)  # rate-limit window of that user
    baseline_names = _task_names()
    limiter = trio.CapacityLimiter(PARALLEL)

    async def one(i: int, client: httpx2.AsyncClient) -> None:
        async with limiter:
            mode = i % 3
            knobs = {"x-fake-delay-ms": "20", "x-fake-deltas": "500"}
            if mode == 0:
                knobs["x-fake-first-delay-ms"] = "2000"  # cancelled before the head
            with trio.move_on_after(0.3 if mode == 0 else 5):
                async with client.stream(
                    "POST",
                    "/v1/responses",
                    content=body(),
                    headers={**JSON, **auth(tokens[i]), **knobs},
                ) as r:
                    got = 0
                    async for chunk in r.aiter_raw():
                        got += len(chunk)
                        if mode == 1 or got > 2000:
                            break  # cancelled mid-stream

    # Each stream on its own connection, closed when it is abandoned.
    async with httpx2.AsyncClient(
        base_url=proxy.url, timeout=30, limits=httpx2.Limits(max_keepalive_connections=0)
    ) as client:
        async with trio.open_nursery() as nursery:
            for i in range(1, STREAMS):
                nursery.start_soon(one, i, client)

    fake = proxy.fake
    with trio.fail_after(10):
        for record in fake.streams[1:]:
            await record.done.wait()
    # Some clients give up before privchat even reached the upstream; the rest were opened.
    assert len(fake.streams) > STREAMS // 2
    assert all(s.disconnected for s in fake.streams[1:]), "every upstream request was cancelled"

    pool = _upstream_pool(proxy)
    with trio.fail_after(5):
        # httpcore2 has no event for "connection returned": poll it under a deadline.
        while not all(c.is_idle() or c.is_closed() for c in pool.connections):  # type: ignore[attr-defined]  # noqa: ASYNC110
            await trio.sleep(0.01)  # polling an observable state with a deadline
    assert not pool._requests  # type: ignore[attr-defined]  # no queued/active pool slot
    # A connection whose query was cancelled goes back to the pool asynchronously (asyncpg
    # cancels the server-side command first): every connection must be back within a deadline.
    with trio.fail_after(5):
        while svc.db.idle != svc.db.size:  # noqa: ASYNC110 - no event for "released"
            await trio.sleep(0.01)
    assert all(s.in_flight == 0 for s in svc.ratelimit.users.values())

    # The pool still serves, and once every client has closed its connections the task tree
    # is back to the baseline: no per-request task (ASGI handlers, relay guards, upstream
    # reads) and no per-connection task (hypercorn's reader and keep-alive timer) is left.
    # Allowed growth: the DB pool's connections, one trio-asyncio I/O task each.
    r = await proxy.client.post(
        "/v1/responses", content=body(), headers={**JSON, **auth(tokens[0])}
    )
    assert r.status_code == 200 and r.content == fake.streams[-1].data
    from collections import Counter

    def extra() -> Counter[str]:
        grown = Counter(_task_names()) - Counter(baseline_names)
        io = grown.pop("trio_asyncio.BaseTrioEventLoop._io_task", 0)
        assert io <= svc.config.database_max_connections
        return grown

    await proxy.client.aclose()
    with trio.move_on_after(5):
        while sum(extra().values()) > 0:  # noqa: ASYNC110 - tasks end asynchronously
            await trio.sleep(0.05)
    assert sum(extra().values()) == 0, extra()
