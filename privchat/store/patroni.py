"""Patroni discovery (platform.md §1.7) and leader following (D7).

The cluster document comes from the Patroni REST API (`GET .../cluster`) of any member listed
in `PATRONI_CLUSTER_URL` (comma-separated; the first that answers with a leader wins, so the
cluster is not lost with the node that was asked). Only running or streaming members count as
leader or replica; `leader`/`master` is the leader (the last one listed wins), the standby roles
are replicas, anything else is ignored. `lag` may be a number or `"unknown"`.

privchat connects with a DSN that lists every member, leader first, and
`target_session_attrs=read-write`, so a new connection always lands on the writable server and
never on a replica. The pool is replaced when the leader or the membership changes. Discovery
runs every `DATABASE_REFRESH_INTERVAL`, and at once when a statement found no writable leader
(`Database.outage`): a failover is followed in well under a second, not on the next poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx2
import trio

from ..config import Config, patroni_urls
from .db import Database

log = logging.getLogger(__name__)

LEADER_ROLES = ("leader", "master")
REPLICA_ROLES = ("replica", "sync_standby", "async_standby")
LIVE_STATES = ("running", "streaming")
ENDPOINT_SECONDS = 2.0  # per REST endpoint: a dead member must not stall discovery
LEADERLESS_POLL = 0.5
REDISCOVER_PAUSE = 0.2  # at most five discoveries a second while the database is out


class PatroniError(Exception):
    """Discovery failed or found no leader."""


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    port: int
    role: str
    state: str
    lag: int | None = None


@dataclass(frozen=True)
class Cluster:
    leader: Member | None
    replicas: tuple[Member, ...]
    hosts: tuple[tuple[str, int], ...] = ()  # every member's address, whatever its state


def parse_cluster(document: Any) -> Cluster:
    if not isinstance(document, dict) or not isinstance(document.get("members"), list):
        raise PatroniError("cluster document has no member list")
    leader: Member | None = None
    replicas: list[Member] = []
    hosts: list[tuple[str, int]] = []
    for raw in document["members"]:
        try:
            lag = raw.get("lag")
            member = Member(
                name=str(raw["name"]),
                host=str(raw["host"]),
                port=int(raw["port"]),
                role=str(raw["role"]),
                state=str(raw["state"]),
                lag=lag if isinstance(lag, int) else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise PatroniError("malformed cluster member") from None
        if (member.host, member.port) not in hosts:
            hosts.append((member.host, member.port))
        if member.state not in LIVE_STATES:
            continue
        if member.role in LEADER_ROLES:
            leader = member
        elif member.role in REPLICA_ROLES:
            replicas.append(member)
    return Cluster(leader, tuple(replicas), tuple(hosts))


async def discover(client: httpx2.AsyncClient, url: str) -> Cluster:
    try:
        with trio.fail_after(ENDPOINT_SECONDS):
            response = await client.get(url)
    except (httpx2.HTTPError, trio.TooSlowError) as exc:
        raise PatroniError(f"cluster endpoint unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise PatroniError(f"cluster endpoint answered {response.status_code}")
    try:
        return parse_cluster(response.json())
    except ValueError:
        raise PatroniError("cluster endpoint did not answer JSON") from None


async def discover_any(client: httpx2.AsyncClient, urls: list[str]) -> Cluster:
    """Ask each endpoint in turn: the first answer with a leader, else the first answer.
    Raises `PatroniError` only when no endpoint answered."""
    answer: Cluster | None = None
    error: PatroniError | None = None
    for url in urls:
        try:
            cluster = await discover(client, url)
        except PatroniError as exc:
            error = error or exc
            continue
        if cluster.leader is not None:
            return cluster
        answer = answer or cluster
    if answer is not None:
        return answer
    assert error is not None
    raise error if len(urls) == 1 else PatroniError(f"no Patroni endpoint answered ({error})")


def cluster_dsn(config: Config, cluster: Cluster) -> str:
    """Every member, the leader first: with `target_session_attrs=read-write` asyncpg connects
    to whichever of them is writable when the connection is made."""
    assert cluster.leader is not None
    first = (cluster.leader.host, cluster.leader.port)
    return config.database_dsn(hosts=(first, *(h for h in cluster.hosts if h != first)))


async def leader_dsn(client: httpx2.AsyncClient, config: Config) -> tuple[str, Cluster]:
    """The DSN of the cluster once it has a leader, waiting up to `DATABASE_WAIT_SECONDS` for
    one. No endpoint answering at all fails at once (startup exits 2 with one line)."""
    deadline = trio.current_time() + config.database_wait_seconds
    while True:
        cluster = await discover_any(client, patroni_urls(config))
        if cluster.leader is not None:
            return cluster_dsn(config, cluster), cluster
        if trio.current_time() + LEADERLESS_POLL > deadline:
            raise PatroniError("Patroni reports no running leader")
        await trio.sleep(LEADERLESS_POLL)


class LeaderFollower:
    """Follows leader and membership changes: on every `DATABASE_REFRESH_INTERVAL`, and at once
    when the database reports an outage. Problems are logged once per change, never raised."""

    def __init__(self, config: Config, db: Database, client: httpx2.AsyncClient, cluster: Cluster):
        assert cluster.leader is not None
        self.config = config
        self.db = db
        self.client = client
        self.leader: Member = cluster.leader
        self.hosts = cluster.hosts
        self.changes = 0
        self.problem: str | None = None
        self.leaderless_since: float | None = None
        self._waited_too_long = False

    def _report(self, problem: str | None) -> None:
        if problem != self.problem:
            if problem is None:
                log.warning("patroni discovery recovered", extra={"member": self.leader.name})
            else:
                log.error("patroni discovery: keeping the current pool", extra={"error": problem})
            self.problem = problem

    def _leaderless(self, now_leaderless: bool) -> None:
        if not now_leaderless:
            self.leaderless_since = None
            self._waited_too_long = False
            return
        now = trio.current_time()
        if self.leaderless_since is None:
            self.leaderless_since = now
        elif (
            not self._waited_too_long
            and now - self.leaderless_since > self.config.database_wait_seconds
        ):
            self._waited_too_long = True
            log.error(
                "no database leader for longer than DATABASE_WAIT_SECONDS; answering 503",
                extra={"waited_s": round(now - self.leaderless_since, 1)},
            )

    async def refresh(self) -> None:
        try:
            cluster = await discover_any(self.client, patroni_urls(self.config))
        except PatroniError as exc:
            self._report(str(exc))
            return
        self._leaderless(cluster.leader is None)
        if cluster.leader is None:
            self._report("Patroni reports no running leader")
            return
        leader = cluster.leader
        moved = (leader.host, leader.port) != (self.leader.host, self.leader.port)
        if not moved and set(cluster.hosts) <= set(self.hosts):
            self._report(None)
            return
        try:
            await self.db.reconnect(
                cluster_dsn(self.config, cluster),
                max_size=self.config.database_max_connections,
                tls=self.config.database_tls_enabled,
                read_write=True,
            )
        except Exception as exc:  # e.g. not promoted yet: try again on the next outage
            self._report(f"new pool not opened: {type(exc).__name__}")
            self.db.outage.set()
            return
        self._report(None)
        self.hosts = cluster.hosts
        if moved:
            self.leader = leader
            self.changes += 1
            log.warning("database leader changed; pool replaced", extra={"member": leader.name})

    async def run(self) -> None:
        while True:
            with trio.move_on_after(self.config.database_refresh_interval):
                await self.db.outage.wait()
            self.db.outage = trio.Event()
            await self.refresh()
            await trio.sleep(REDISCOVER_PAUSE)
