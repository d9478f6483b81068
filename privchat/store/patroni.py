"""Patroni discovery (platform.md §1.7) and leader following (D7).

The cluster document comes from the Patroni REST API (`GET .../cluster`). Only running or
streaming members count; `leader`/`master` is the leader (the last one listed wins), the
standby roles are replicas, anything else is ignored. `lag` may be a number or `"unknown"`.
When a refresh finds another leader, the shared pool is replaced, so every query from then on
goes to the current leader without a restart (the reference kept the old leader's pool).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx2
import trio

from ..config import Config, patroni_url
from .db import Database

log = logging.getLogger(__name__)

LEADER_ROLES = ("leader", "master")
REPLICA_ROLES = ("replica", "sync_standby", "async_standby")
LIVE_STATES = ("running", "streaming")


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


def parse_cluster(document: Any) -> Cluster:
    if not isinstance(document, dict) or not isinstance(document.get("members"), list):
        raise PatroniError("cluster document has no member list")
    leader: Member | None = None
    replicas: list[Member] = []
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
        except (KeyError, TypeError, ValueError):
            raise PatroniError("malformed cluster member") from None
        if member.state not in LIVE_STATES:
            continue
        if member.role in LEADER_ROLES:
            leader = member
        elif member.role in REPLICA_ROLES:
            replicas.append(member)
    return Cluster(leader, tuple(replicas))


async def discover(client: httpx2.AsyncClient, url: str) -> Cluster:
    try:
        with trio.fail_after(10):
            response = await client.get(url)
    except (httpx2.HTTPError, trio.TooSlowError) as exc:
        raise PatroniError(f"cluster endpoint unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise PatroniError(f"cluster endpoint answered {response.status_code}")
    try:
        return parse_cluster(response.json())
    except ValueError:
        raise PatroniError("cluster endpoint did not answer JSON") from None


async def leader_dsn(client: httpx2.AsyncClient, config: Config) -> tuple[str, Member]:
    cluster = await discover(client, patroni_url(config))
    if cluster.leader is None:
        raise PatroniError("Patroni reports no running leader")
    return config.database_dsn(cluster.leader.host, cluster.leader.port), cluster.leader


class LeaderFollower:
    """Refreshes discovery every `DATABASE_REFRESH_INTERVAL` and follows leader changes."""

    def __init__(self, config: Config, db: Database, client: httpx2.AsyncClient, leader: Member):
        self.config = config
        self.db = db
        self.client = client
        self.leader = leader
        self.changes = 0

    async def refresh(self) -> None:
        try:
            dsn, leader = await leader_dsn(self.client, self.config)
        except PatroniError as exc:
            log.error(
                "patroni refresh failed; keeping the current leader", extra={"error": str(exc)}
            )
            return
        if (leader.host, leader.port) == (self.leader.host, self.leader.port):
            return
        await self.db.reconnect(
            dsn,
            max_size=self.config.database_max_connections,
            tls=self.config.database_tls_enabled,
        )
        self.leader = leader
        self.changes += 1
        log.warning("database leader changed; pool replaced", extra={"member": leader.name})

    async def run(self) -> None:
        while True:
            await trio.sleep(self.config.database_refresh_interval)
            await self.refresh()
