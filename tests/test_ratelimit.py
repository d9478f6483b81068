"""The /v1/responses rate limiter: §2.7.2 arithmetic (pure) and scenarios 32-36 of api.md §6 (D16)."""

from __future__ import annotations

import uuid

import trio

from privchat.ratelimit import RateLimiter, Rejection, Slot, UserState, decide
from tests.proxyfixtures import JSON, Proxy, body, proxy

__all__ = ["proxy"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_then_concurrency_arithmetic() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    user = uuid.uuid4()
    first = limiter.acquire(user)
    assert isinstance(first, Slot)
    clock.now += 0.2501
    second = limiter.acquire(user)
    assert isinstance(second, Rejection)
    assert second.retry_after_ms == 750  # 1000 - 250 (truncated)
    assert second.body == {
        "error": "Rate limit exceeded. Please retry after 750ms.",
        "retry_after_ms": 750,
    }
    assert second.retry_after_seconds == 1
    # Exactly 1 s later the timestamp is not "strictly older": still limited, 0 ms.
    clock.now = 1001.0
    edge = limiter.acquire(user)
    assert isinstance(edge, Rejection) and edge.retry_after_ms == 0
    clock.now = 1001.001
    third = limiter.acquire(user)
    assert isinstance(third, Slot)  # two in flight now
    clock.now += 1.5
    busy = limiter.acquire(user)
    assert isinstance(busy, Rejection) and busy.retry_after_ms is None
    assert busy.body == {"error": "Too many concurrent requests. Please try again shortly."}
    assert busy.retry_after_seconds == 1
    first.release()
    first.release()  # idempotent
    clock.now += 1.5
    assert isinstance(limiter.acquire(user), Slot)


def test_rejections_do_not_consume_quota_and_users_are_independent() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    a, b = uuid.uuid4(), uuid.uuid4()
    assert isinstance(limiter.acquire(a), Slot)
    for _ in range(5):
        clock.now += 0.1
        assert isinstance(limiter.acquire(a), Rejection)
    assert len(limiter.users[a].accepted) == 1
    assert isinstance(limiter.acquire(b), Slot)
    clock.now += 0.55  # 1.05 s after a's only accepted request
    assert isinstance(limiter.acquire(a), Slot)


def test_decide_is_pure_and_idle_state_is_purged() -> None:
    state = UserState()
    assert decide(state, 5.0) is None
    state.accepted.append(5.0)
    assert decide(state, 5.5) == Rejection("Rate limit exceeded. Please retry after 500ms.", 500)
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(1023):
        limiter.acquire(uuid.uuid4()).release()  # type: ignore[union-attr]
    clock.now += 3601
    limiter.acquire(uuid.uuid4())  # the 1024th check purges idle users
    assert len(limiter.users) == 1


def test_retry_after_rounds_up() -> None:
    assert Rejection("x", 1).retry_after_seconds == 1
    assert Rejection("x", 1000).retry_after_seconds == 1
    assert Rejection("x", 1001).retry_after_seconds == 2


async def test_scenarios_32_33_34_first_ok_second_429_other_user_ok(proxy: Proxy) -> None:
    a = await proxy.headers()
    b = await proxy.headers()
    data = body()
    first = await proxy.client.post("/v1/responses", content=data, headers={**JSON, **a})
    assert first.status_code != 429  # 32
    second = await proxy.client.post("/v1/responses", content=data, headers={**JSON, **a})
    assert second.status_code == 429  # 33
    payload = second.json()
    assert payload["error"].startswith("Rate limit exceeded. Please retry after ")
    assert 0 <= payload["retry_after_ms"] <= 1000
    assert (
        payload["error"]
        == f"Rate limit exceeded. Please retry after {payload['retry_after_ms']}ms."
    )
    assert second.headers["retry-after"] == "1"  # D16
    other = await proxy.client.post("/v1/responses", content=data, headers={**JSON, **b})
    assert other.status_code != 429  # 34


async def test_scenario_35_model_list_not_rate_limited(proxy: Proxy) -> None:
    headers = await proxy.headers()
    for _ in range(5):
        r = await proxy.client.get("/v1/model/list", headers=headers)
        assert r.status_code == 200


async def test_scenario_36_three_concurrent_at_least_two_429(proxy: Proxy) -> None:
    headers = await proxy.headers()
    statuses: list[int] = []

    async def post() -> None:
        r = await proxy.client.post("/v1/responses", content=body(), headers={**JSON, **headers})
        statuses.append(r.status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(post)
    assert statuses.count(429) >= 2, statuses


async def test_concurrency_slot_released_at_response_head(proxy: Proxy) -> None:
    """Two long streams in flight still leave room once the window passed: the slot is held
    only until the head (so a third request is limited by the window, not by the streams)."""
    token, user_id = await proxy.user()
    headers = {"Authorization": f"Bearer {token}"}
    limiter = proxy.server.services.ratelimit
    async with proxy.client.stream(
        "POST",
        "/v1/responses",
        content=body(),
        headers={**JSON, **headers, "x-fake-delay-ms": "200", "x-fake-deltas": "20"},
    ) as r:
        assert r.status_code == 200
        assert limiter.users[user_id].in_flight == 0  # head returned: slot released
