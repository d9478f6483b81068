"""Failover of a real Patroni cluster under load through privchat's API (issue 13, point 2).

One cluster per module (etcd + 2 Patroni nodes, ≈5-10 s to start). Each test runs one
`privchat serve` over it with both nodes' REST URLs and the default 30 s refresh interval, so
the new leader is found because a statement failed, not by polling. The hard kill deletes the
leader key in etcd after the SIGKILL: the state Patroni reaches when the 20 s TTL runs out.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
import trio

from privchat.devtools.ha_cluster import HaCluster

from .fakecloud_fixtures import start_fake_cloud
from .ha_fixtures import (
    Load,
    ha_cluster_fixture,
    login,
    record_figures,
    start_privchat,
    stop_privchat,
)

ha_cluster = pytest.fixture(scope="module")(ha_cluster_fixture)

WARMUP = 1.5
AFTER = 3.0  # seconds of load after privchat writes again


def _watch_promotion(cluster: HaCluster, old: str) -> tuple[threading.Thread, dict[str, float]]:
    """A thread noting when Patroni first reports a running leader other than `old`."""
    seen: dict[str, float] = {}

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            leader = cluster.leader()
            if leader is not None and leader != old:
                seen["at"] = time.monotonic()
                seen["leader"] = leader  # type: ignore[assignment]
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, seen


async def _failover(
    cluster: HaCluster, tmp_path: Path, kind: str, inject: Callable[[str, str], None]
) -> dict[str, float]:
    cluster.wait_healthy()
    old = cluster.leader()
    assert old is not None
    other = next(name for name in cluster.nodes if name != old)
    async with trio.open_nursery() as nursery:
        _fake, cloud_url = await start_fake_cloud(nursery)
        replica = await start_privchat(cluster, cloud_url, tmp_path)
        try:
            load = Load(replica.url)
            tokens = [await login(replica.url) for _ in range(4)]
            async with httpx2.AsyncClient(timeout=10) as client, trio.open_nursery() as inner:
                for _ in range(3):
                    inner.start_soon(load.writer, client)
                for token in tokens:
                    inner.start_soon(load.streamer, client, token)
                await trio.sleep(WARMUP)
                watcher, promoted = _watch_promotion(cluster, old)
                fault = time.monotonic()
                await trio.to_thread.run_sync(inject, old, other)
                await trio.to_thread.run_sync(watcher.join)
                assert "at" in promoted, "Patroni promoted no new leader"
                with trio.fail_after(30):  # wait until privchat writes again, then a bit more
                    while not _wrote_after(load, promoted["at"]):  # noqa: ASYNC110
                        await trio.sleep(0.05)  # the load's own progress, no event to wait on
                await trio.sleep(AFTER)
                load.stop.set()
            new = str(promoted["leader"])
            if kind != "switchover":  # only once the other node leads, or the old one could win
                cluster.start_node(old)  # the old leader rejoins as a replica
            await trio.to_thread.run_sync(cluster.wait_healthy, 60.0)
            assert cluster.leader() == new
            assert await stop_privchat(replica) == 0  # drains queued activity rows too
        finally:
            if replica.process.poll() is None:
                replica.process.kill()
        nursery.cancel_scope.cancel()

    missing = load.verify(cluster, new)
    assert missing == {"sessions": 0, "conversations": 0, "settings": 0}, missing
    # privchat never holds a connection to the replica (the old leader, rejoined).
    assert (
        cluster.sql(old, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'privchat'") == "0"
    )
    # Activity rows queued while there was no leader were written once there was one.
    activity = int(
        cluster.sql(new, "SELECT count(*) FROM user_activity_log WHERE activity_type = 'response'")
    )
    assert activity >= load.streams_completed > 0

    first_failed, first_ok = load.write_outage(fault)
    slowest = max(o.end - o.start for o in load.outcomes)
    failed = [o for o in load.outcomes if not o.ok]
    figures = {
        "kind": kind,
        "promoted_after_fault_s": round(promoted["at"] - fault, 3),
        "client_write_outage_s": 0.0
        if math.isnan(first_failed)
        else round(first_ok - first_failed, 3),
        "writes_ok_after_promotion_s": round(
            _first_write_after(load, promoted["at"]) - promoted["at"], 3
        ),
        "acked_writes": len(load.sessions) + len(load.conversations) + len(load.settings),
        "acked_writes_lost": sum(missing.values()),
        "failed_requests": len(failed),
        "failed_without_retry_after": sum(
            1 for o in failed if o.status == 503 and not o.retry_after
        ),
        "answers_5xx_other_than_503": sum(1 for o in failed if o.status >= 500 and o.status != 503),
        "failures": load.failures(),
        "streams_completed": load.streams_completed,
        "slowest_request_s": round(slowest, 3),
    }
    record_figures(f"failover {kind}", figures)
    errors = _logged_errors(replica.log)
    assert figures["failed_without_retry_after"] == 0, (figures, errors)
    assert figures["answers_5xx_other_than_503"] == 0, (figures, errors)
    assert slowest < 5.0, figures
    return figures


def _logged_errors(log: Path) -> list[str]:
    """privchat's error lines (JSON log), for the message of a failed assertion."""
    lines = log.read_text(errors="replace").splitlines()
    return [line[:2000] for line in lines if '"level": "ERROR"' in line or "Traceback" in line]


def _first_write_after(load: Load, moment: float) -> float:
    return min(o.end for o in load.writes() if o.ok and o.start >= moment)


def _wrote_after(load: Load, moment: float) -> bool:
    return any(o.ok and o.start >= moment for o in load.writes())


async def test_hard_kill_of_the_leader(ha_cluster: HaCluster, tmp_path: Path) -> None:
    def inject(old: str, _other: str) -> None:
        ha_cluster.kill(old)
        ha_cluster.expire_leader_key()

    figures = await _failover(ha_cluster, tmp_path, "hard kill", inject)
    assert figures["writes_ok_after_promotion_s"] <= 2.0, figures


async def test_switchover(ha_cluster: HaCluster, tmp_path: Path) -> None:
    figures = await _failover(
        ha_cluster, tmp_path, "switchover", lambda old, other: ha_cluster.switchover(old, other)
    )
    assert figures["client_write_outage_s"] < 5.0, figures


async def test_graceful_stop_of_the_leader(ha_cluster: HaCluster, tmp_path: Path) -> None:
    def inject(old: str, _other: str) -> None:
        ha_cluster.stop(old)  # Patroni stops PostgreSQL and releases the leader key

    figures = await _failover(ha_cluster, tmp_path, "graceful stop", inject)
    assert figures["client_write_outage_s"] < 5.0, figures


async def test_no_leader_for_longer_than_the_wait_answers_503_and_recovers(
    ha_cluster: HaCluster, tmp_path: Path
) -> None:
    """Both nodes stopped for longer than DATABASE_WAIT_SECONDS: privchat stays up, answers
    503 with Retry-After (within the 2 s retry), and writes again once a leader is back."""
    ha_cluster.wait_healthy()
    leader = ha_cluster.leader()
    assert leader is not None
    replica_node = next(name for name in ha_cluster.nodes if name != leader)
    async with trio.open_nursery() as nursery:
        _fake, cloud_url = await start_fake_cloud(nursery)
        replica = await start_privchat(ha_cluster, cloud_url, tmp_path, DATABASE_WAIT_SECONDS="1")
        try:
            async with httpx2.AsyncClient(timeout=10) as client:

                async def login_status() -> tuple[int, float, str | None]:
                    start = time.monotonic()
                    r = await client.post(
                        replica.url + "/v1/auth/mock-login", json={"email": "nl@example.com"}
                    )
                    return r.status_code, time.monotonic() - start, r.headers.get("retry-after")

                assert (await login_status())[0] == 200
                await trio.to_thread.run_sync(ha_cluster.stop, replica_node)
                await trio.to_thread.run_sync(ha_cluster.stop, leader)
                down = time.monotonic()
                answers = []
                while time.monotonic() - down < 3.0:  # three times DATABASE_WAIT_SECONDS
                    answers.append(await login_status())
                assert answers and all(
                    status == 503 and after == "1" and seconds < 5.0
                    for status, seconds, after in answers
                ), answers
                assert (await client.get(replica.url + "/ready")).status_code == 503
                assert replica.process.poll() is None  # still up
                for name in (leader, replica_node):
                    ha_cluster.start_node(name)
                await trio.to_thread.run_sync(ha_cluster.wait_healthy, 60.0)
                with trio.fail_after(10):  # privchat writes again without a restart
                    while (await login_status())[0] != 200:
                        pass
                assert (await client.get(replica.url + "/ready")).status_code == 200
            assert await stop_privchat(replica) == 0
        finally:
            if replica.process.poll() is None:
                replica.process.kill()
        nursery.cancel_scope.cancel()
    record_figures("no leader", {"answers_while_down": len(answers)})
