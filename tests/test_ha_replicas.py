"""Three `privchat serve` replicas behind HAProxy over a real Patroni cluster (issue 13, point 3).

HAProxy runs `deploy/haproxy.cfg` as shipped (addresses replaced, a stats listener added for
the test to see which replicas it counts as up). One cluster for the module; each test starts
its own three replicas (VPC mode against the in-process fake cloud, NEAR balance checks against
a fake NEAR RPC). Propagation across replicas is measured on the replicas' own ports: the change
is made through one, and the others are asked until they show it.
"""

from __future__ import annotations

import hashlib
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import trio
import trio_asyncio

from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud
from privchat.devtools.ha_cluster import HaCluster, free_port
from privchat.store.db import Database

from .fakes.near_rpc import ONE_NEAR, FakeNearRpc, serve_fake_near_rpc
from .ha_fixtures import (
    Load,
    Replica,
    ha_cluster_fixture,
    record_figures,
    start_privchat,
    stop_privchat,
)

ha_cluster = pytest.fixture(scope="module")(ha_cluster_fixture)

HAPROXY_CONFIG = Path(__file__).parent.parent / "deploy" / "haproxy.cfg"
VPC_SECRET = "ha-vpc-secret"
ADMIN_DOMAIN = "admin.org"
MODEL = "privchat-dev/echo"
CHANGES = 50  # per kind of change, for the propagation figures
RATE_PERIOD = 1.05  # one /v1/responses a second per user and replica
FIRST_ASK = 0.05  # after a ban's commit, before the other replicas are asked
SLOW_STREAM = {"x-fake-delay-ms": "350", "x-fake-deltas": "8"}  # about 3 s a stream: past the drain


@dataclass
class Front:
    """Three replicas, HAProxy in front, and the fakes they use."""

    cluster: HaCluster
    directory: Path
    cloud: FakeCloud
    cloud_url: str
    rpc: FakeNearRpc
    env: dict[str, str]
    replicas: list[Replica]
    haproxy: trio.Process
    port: int
    stats_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start_replica(self, port: int | None = None) -> Replica:
        return await start_privchat(
            self.cluster, self.cloud_url, self.directory, port=port, **self.env
        )

    async def servers_up(self) -> dict[str, bool]:
        """HAProxy's view: each replica's server line, and whether it counts as UP."""
        async with httpx2.AsyncClient(timeout=2) as client:
            csv = (await client.get(f"http://127.0.0.1:{self.stats_port}/stats;csv")).text
        up = {}
        for line in csv.splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "replicas" and fields[1].startswith("privchat"):
                up[fields[1]] = fields[17] == "UP"
        return up

    async def wait_up(self, expected: dict[str, bool]) -> None:
        with trio.fail_after(20):
            while await self.servers_up() != expected:  # noqa: ASYNC110
                await trio.sleep(0.05)  # HAProxy's health checks: another process


def _haproxy_config(port: int, stats_port: int, replica_ports: list[int]) -> str:
    text = HAPROXY_CONFIG.read_text()
    text = text.replace("bind 127.0.0.1:8080", f"bind 127.0.0.1:{port}")
    for number, replica_port in enumerate(replica_ports, start=1):
        text = text.replace(f"127.0.0.1:808{number}", f"127.0.0.1:{replica_port}")
    return text + (
        f"\nlisten stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /stats\n"
    )


@asynccontextmanager
async def front(cluster: HaCluster, tmp_path: Path) -> AsyncIterator[Front]:
    cluster.wait_healthy()
    leader = cluster.leader()
    assert leader is not None
    # A VPC key stored by an earlier test's fake cloud would be refused by this one.
    cluster.sql(
        leader,
        "DO $$ BEGIN IF to_regclass('app_config') IS NOT NULL THEN"
        " DELETE FROM app_config WHERE key LIKE 'vpc_%'; END IF; END $$",
    )
    async with trio.open_nursery() as nursery:
        cloud = FakeCloud(api_key="sk-unused", vpc_secret=VPC_SECRET.encode())
        cloud_url = await nursery.start(serve_fake_cloud, cloud)
        rpc = FakeNearRpc()
        rpc_url = await nursery.start(serve_fake_near_rpc, rpc)
        secret = tmp_path / "vpc-secret"
        secret.write_text(VPC_SECRET)
        env = {
            "OPENAI_API_KEY": "",
            "VPC_SHARED_SECRET_FILE": str(secret),
            "NEAR_RPC_URL": rpc_url,
            "AUTH_ADMIN_DOMAINS": ADMIN_DOMAIN,
            "SHUTDOWN_DRAIN_SECONDS": "1.5",
        }
        replicas: list[Replica] = []
        haproxy: trio.Process | None = None
        try:
            for _ in range(3):  # one after the other: the first logs in to the VPC for all
                replicas.append(await start_privchat(cluster, cloud_url, tmp_path, **env))
            port, stats_port = free_port(), free_port()
            config = tmp_path / "haproxy.cfg"
            config.write_text(_haproxy_config(port, stats_port, [r.port for r in replicas]))
            haproxy = await trio.lowlevel.open_process(
                ["haproxy", "-f", str(config), "-db"],
                stdout=subprocess.DEVNULL,
                stderr=open(tmp_path / "haproxy.log", "ab"),  # noqa: SIM115 - the child owns it
            )
            result = Front(
                cluster, tmp_path, cloud, cloud_url, rpc, env, replicas, haproxy, port, stats_port
            )
            with trio.fail_after(20):
                while True:
                    try:
                        if await result.servers_up() == _all_up(True):
                            break
                    except httpx2.HTTPError:
                        pass  # HAProxy not listening yet
                    await trio.sleep(0.05)
            yield result
        finally:
            if haproxy is not None:
                haproxy.kill()
                await haproxy.wait()
            for replica in replicas:
                if replica.process.poll() is None:
                    replica.process.kill()
                    await replica.process.wait()
            nursery.cancel_scope.cancel()


def _all_up(value: bool, **overrides: bool) -> dict[str, bool]:
    return {f"privchat{i}": overrides.get(f"privchat{i}", value) for i in (1, 2, 3)}


async def _login(
    client: httpx2.AsyncClient, base: str, email: str | None = None, **extra: str
) -> str:
    email = email or f"r-{uuid.uuid4().hex[:12]}@example.com"
    response = await client.post(base + "/v1/auth/mock-login", json={"email": email, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- rolling restart ---------------------------------------------------------------------------


async def test_rolling_restart_under_load_fails_no_request(
    ha_cluster: HaCluster, tmp_path: Path
) -> None:
    async with front(ha_cluster, tmp_path) as f, httpx2.AsyncClient(timeout=30) as client:
        load = Load(f.url, stream_headers=SLOW_STREAM)
        tokens = [await _login(client, f.url) for _ in range(6)]
        exits: list[int] = []
        stop_seconds: list[float] = []
        in_flight_at_sigterm: list[int] = []
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(load.writer, client)
            for token in tokens:
                nursery.start_soon(load.streamer, client, token)
            await trio.sleep(1.5)  # the load runs on all three
            for index in range(3):
                old = f.replicas[index]
                in_flight_at_sigterm.append(_streams_in_flight(load))
                started = time.monotonic()
                exits.append(await stop_privchat(old, within=25))
                stop_seconds.append(round(time.monotonic() - started, 2))
                f.replicas[index] = await f.start_replica(port=old.port)
                await f.wait_up(_all_up(True))
            await trio.sleep(1.0)
            load.stop.set()
        leader = ha_cluster.leader()
        assert leader is not None
        missing = load.verify(ha_cluster, leader)
    failed = [o for o in load.outcomes if not o.ok]
    figures = {
        "requests": len(load.outcomes),
        "failed_requests": len(failed),
        "failures": load.failures(),
        "streams_completed": load.streams_completed,
        "streams_in_flight_at_each_sigterm": in_flight_at_sigterm,
        "exit_codes": exits,
        "sigterm_to_exit_s": stop_seconds,
        "acked_writes_lost": sum(missing.values()),
    }
    record_figures("rolling restart", figures)
    assert failed == [], figures
    assert exits == [0, 0, 0], figures
    assert sum(missing.values()) == 0, figures
    assert load.streams_completed > 0 and sum(in_flight_at_sigterm) > 0, figures


def _streams_in_flight(load: Load) -> int:
    """Streams started and not yet recorded (each streamer records one when it ends)."""
    return load.stream_starts - sum(1 for o in load.outcomes if o.kind == "stream")


# --- SIGKILL of one replica ----------------------------------------------------------------------


async def test_sigkill_of_one_replica_aborts_only_its_streams(
    ha_cluster: HaCluster, tmp_path: Path
) -> None:
    async with front(ha_cluster, tmp_path) as f, httpx2.AsyncClient(timeout=30) as client:
        load = Load(f.url, stream_headers=SLOW_STREAM)
        tokens = [await _login(client, f.url) for _ in range(9)]
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(load.writer, client)
            for token in tokens:
                nursery.start_soon(load.streamer, client, token)
            await trio.sleep(1.5)
            killed_at = time.monotonic()
            f.replicas[0].process.kill()
            assert await f.replicas[0].process.wait() == -signal.SIGKILL
            await f.wait_up(_all_up(True, privchat1=False))
            marked_down_at = time.monotonic()
            await trio.sleep(2.0)  # the load goes on over the other two
            load.stop.set()
    failed = [o for o in load.outcomes if not o.ok]
    # In flight at the kill, then without an answer (cut short): on the killed replica.
    cut = [o for o in failed if o.status == 0 and o.start < killed_at < o.end]
    # Sent while HAProxy still counted the dead replica as up (its checks run every 200 ms):
    # HAProxy retries a refused connection elsewhere, but a request that reached the dying
    # process's accept queue is reset, which HAProxy never retries, and closed without an
    # answer on a reused client connection (seen once in four runs: a log-in, status 0).
    window = [o for o in failed if o.status == 0 and killed_at <= o.start < marked_down_at]
    after = [o for o in load.outcomes if o.start >= marked_down_at]
    figures = {
        "requests": len(load.outcomes),
        "failed_requests": len(failed),
        "failures": load.failures(),
        "cut_in_flight_at_the_kill": len(cut),
        "cut_streams": sum(1 for o in cut if o.kind == "stream"),
        "lost_before_haproxy_marked_it_down": len(window),
        "marked_down_after_kill_s": round(marked_down_at - killed_at, 3),
        "requests_after_marked_down": len(after),
        "failed_after_marked_down": sum(1 for o in after if not o.ok),
        "streams_completed": load.streams_completed,
    }
    record_figures("sigkill one replica", figures)
    # Only requests that met the dead replica may fail, and only without an answer (never a
    # 5xx); once HAProxy has it down, every request succeeds.
    assert len(failed) == len(cut) + len(window), figures
    assert figures["failed_after_marked_down"] == 0 and len(after) > 0, figures
    assert len(window) <= 2, figures


# --- propagation across replicas ----------------------------------------------------------------


class ProbeUsers:
    """Users for probing `/v1/responses` on one replica: each used at most once per
    `RATE_PERIOD` (the per-user rate limit)."""

    def __init__(self, tokens: list[str]) -> None:
        self._free = [(0.0, token) for token in tokens]

    async def take(self) -> str:
        self._free.sort()
        ready, token = self._free.pop(0)
        await trio.sleep(max(0.0, ready - time.monotonic()))
        self._free.append((time.monotonic() + RATE_PERIOD, token))
        return token


async def _until(probe: Callable[[], Awaitable[bool]], since: float) -> float:
    """Seconds from `since` until `probe()` first says the change is seen (answer received)."""
    with trio.fail_after(10):
        while not await probe():
            pass
    return time.monotonic() - since


def _summary(delays: list[float]) -> dict[str, float | int]:
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def test_changes_through_one_replica_reach_the_others_within_a_second(
    ha_cluster: HaCluster, tmp_path: Path
) -> None:
    async with (
        front(ha_cluster, tmp_path) as f,
        httpx2.AsyncClient(timeout=30) as client,
        trio_asyncio.open_loop(),
    ):
        a, others = f.replicas[0].url, [r.url for r in f.replicas[1:]]
        leader = ha_cluster.leader()
        assert leader is not None
        db = await Database.connect(ha_cluster.dsn(leader), max_size=2)
        try:
            figures = {
                "logout": _summary(await _logouts(client, db, a, others)),
                "ban": _summary(await _bans(client, db, f, a, others)),
                "model_settings": _summary(await _model_changes(client, a, others)),
                "vpc_revoke": _summary(await _vpc_revokes(client, f, a, others)),
            }
        finally:
            await db.close()
    record_figures("propagation across replicas", figures)
    for kind, summary in figures.items():
        assert summary["p99_ms"] < 1000, (kind, figures)


async def _logouts(
    client: httpx2.AsyncClient, db: Database, a: str, others: list[str]
) -> list[float]:
    delays = []
    for _ in range(CHANGES):
        token = await _login(client, a)
        for other in others:  # cached there
            assert (
                await client.get(other + "/v1/users/me", headers=_auth(token))
            ).status_code == 200
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        session_id = await db.fetchval("SELECT id FROM sessions WHERE token_hash = $1", token_hash)
        r = await client.post(
            a + "/v1/auth/logout", json={"session_id": str(session_id)}, headers=_auth(token)
        )
        assert r.status_code == 204, r.text
        acked = time.monotonic()
        for other in others:

            async def gone(other: str = other, token: str = token) -> bool:
                r = await client.get(other + "/v1/users/me", headers=_auth(token))
                return r.status_code == 401

            delays.append(await _until(gone, acked))
    return delays


async def _bans(
    client: httpx2.AsyncClient, db: Database, f: Front, a: str, others: list[str]
) -> list[float]:
    """A ban written by replica `a`'s NEAR balance check. Its commit is seen on a LISTEN
    connection of the test's own (the same notification the replicas get); each other replica
    is then asked, FIRST_ASK later (the per-user rate limit allows one request a second), so
    each delay is an upper bound: commit to the answer of the first refused request."""
    users: list[tuple[str, str]] = []  # (account, token)
    for _ in range(CHANGES):
        account = f"ha{uuid.uuid4().hex[:10]}.near"
        f.rpc.add_account(account, 5 * ONE_NEAR)
        token = await _login(client, a, email=f"{account}@near", oauth_provider="near")
        users.append((account, token))
    body = {"model": MODEL, "input": "Hi"}
    for _account, token in users:  # cached on the others, balance fine there
        for other in others:
            r = await client.post(other + "/v1/responses", json=body, headers=_auth(token))
            assert r.status_code == 200, r.text
    ready_at = time.monotonic() + RATE_PERIOD
    for account, _token in users:
        f.rpc.add_account(account, 0)
    committed: dict[str, float] = {}
    seen: dict[str, trio.Event] = {}

    def notified(payload: str) -> None:
        committed.setdefault(payload, time.monotonic())
        if payload in seen:
            seen[payload].set()

    await trio.sleep(max(0.0, ready_at - time.monotonic()))
    delays = []
    async with db.listen("privchat_auth", notified):
        for account, token in users:
            user_id = str(
                await db.fetchval(
                    "SELECT user_id FROM oauth_accounts WHERE provider = 'near'"
                    " AND provider_user_id = $1",
                    account,
                )
            )
            seen[user_id] = trio.Event()
            r = await client.post(a + "/v1/responses", json=body, headers=_auth(token))
            assert r.status_code == 200, r.text  # the check runs after it, off the request path
            with trio.fail_after(10):
                await seen[user_id].wait()
            since = committed[user_id]
            for other in others:
                # The first question waits FIRST_ASK after the commit: asked at once, it can
                # overtake the notification on its way into the replica, and the next
                # question is allowed only a second later.
                asked = since + FIRST_ASK

                async def refused(other: str = other, token: str = token) -> bool:
                    nonlocal asked
                    await trio.sleep(max(0.0, asked - time.monotonic()))
                    asked = time.monotonic() + RATE_PERIOD
                    r = await client.post(other + "/v1/responses", json=body, headers=_auth(token))
                    return r.status_code == 403

                delays.append(await _until(refused, since))
    return delays


async def _model_changes(client: httpx2.AsyncClient, a: str, others: list[str]) -> list[float]:
    admin = _auth(await _login(client, a, email=f"admin-{uuid.uuid4().hex[:8]}@{ADMIN_DOMAIN}"))
    probes = {
        other: ProbeUsers([await _login(client, other) for _ in range(60)]) for other in others
    }
    body = {"model": MODEL, "input": "Hi"}
    delays = []
    try:
        for number in range(CHANGES):
            prompt = f"propagation prompt {number}"
            digest = hashlib.sha256(prompt.encode()).hexdigest()
            r = await client.patch(
                a + "/v1/admin/models", json={MODEL: {"system_prompt": prompt}}, headers=admin
            )
            assert r.status_code == 200, r.text
            acked = time.monotonic()
            for other in others:

                async def changed(other: str = other, digest: str = digest) -> bool:
                    token = await probes[other].take()
                    r = await client.post(other + "/v1/responses", json=body, headers=_auth(token))
                    assert r.status_code == 200, r.text
                    return r.headers.get("x-nearai-model-system-prompt-sha256") == digest

                delays.append(await _until(changed, acked))
    finally:
        await client.delete(a + f"/v1/admin/models/{MODEL}", headers=admin)
    return delays


async def _vpc_revokes(
    client: httpx2.AsyncClient, f: Front, a: str, others: list[str]
) -> list[float]:
    admin = _auth(await _login(client, a, email=f"vpc-admin-{uuid.uuid4().hex[:6]}@{ADMIN_DOMAIN}"))
    user = _auth(await _login(client, a))
    probe_number = 0

    async def key_used(base: str) -> bytes | None:
        nonlocal probe_number
        probe_number += 1
        marker = f"probe={probe_number}".encode()
        r = await client.get(base + f"/v1/model/list?{marker.decode()}", headers=user)
        assert r.status_code == 200, r.text
        request = next(q for q in reversed(f.cloud.requests) if q.query == marker)
        return request.header("authorization")

    delays = []
    for _ in range(CHANGES):
        before = {other: await key_used(other) for other in others}
        r = await client.post(a + "/v1/admin/vpc/revoke", headers=admin)
        assert r.status_code == 204, r.text
        acked = time.monotonic()
        for other in others:

            async def new_key(other: str = other, old: bytes | None = before[other]) -> bool:
                return await key_used(other) != old

            delays.append(await _until(new_key, acked))
    return delays
