"""NEAR balance gating (api.md §2.7.3), off the request path.

`/v1/responses` calls `BalanceGate.submit(user_id, account)` for users with a NEAR link (step 1:
the newest `near` link, `linked_at DESC`, read with the session), which never blocks: the pair
goes into a bounded channel (dropped when full, or when that user is already being checked). A
supervised worker takes them from the channel and checks each, a few at a time:

2. a fresh (5 min) cached balance of at least 1 NEAR → done (low balances are never cached);
3. `view_account` over JSON-RPC (`NEAR_RPC_URL`); any RPC/parse error → done, no ban;
4. below 1 NEAR → a 1 h `near_balance_low` ban unless any ban is already active.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx2
import trio

from ..auth import near_rpc
from ..store import bans
from .registry import opened
from .supervisor import supervise

if TYPE_CHECKING:
    from .registry import Services

log = logging.getLogger(__name__)

ONE_NEAR = 10**24
CACHE_SECONDS = 300.0
BAN_DURATION = timedelta(hours=1)
QUEUE = 1024
CONCURRENCY = 8


class BalanceGate:
    def __init__(
        self,
        svc: Services,
        client: httpx2.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._svc = svc
        self._client = client
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[tuple[uuid.UUID, str]](QUEUE)
        self._queued: set[uuid.UUID] = set()
        self._cache: dict[str, tuple[int, float]] = {}  # account id -> (balance, checked at)
        self._idle = trio.Event()
        self._idle.set()
        self.checked = 0
        self.banned = 0

    def submit(self, user_id: uuid.UUID, account: str) -> None:
        """Queue a check of `user_id`'s NEAR `account`; never blocks, never raises."""
        if user_id in self._queued:
            return
        try:
            self._send.send_nowait((user_id, account))
        except trio.WouldBlock:
            log.warning("balance queue full; check skipped")
            return
        self._queued.add(user_id)
        if self._idle.is_set():
            self._idle = trio.Event()

    async def settled(self) -> None:
        """Wait until every queued check has finished (tests)."""
        while self._queued:
            await self._idle.wait()

    async def run(self) -> None:
        """The worker: checks, at most `CONCURRENCY` at once."""
        limit = trio.CapacityLimiter(CONCURRENCY)
        async with trio.open_nursery() as nursery:
            async for user_id, account in self._receive:
                await limit.acquire_on_behalf_of(user_id)
                nursery.start_soon(self._one, user_id, account, limit)

    async def _one(self, user_id: uuid.UUID, account: str, limit: trio.CapacityLimiter) -> None:
        try:
            await self.check(user_id, account)
        except Exception:
            log.exception("balance check failed", extra={"user_id": str(user_id)})
        finally:
            limit.release_on_behalf_of(user_id)
            self._queued.discard(user_id)
            if not self._queued:
                self._idle.set()

    async def check(self, user_id: uuid.UUID, account: str) -> None:
        db = self._svc.db
        cached = self._cache.get(account)
        if cached is not None and self._clock() - cached[1] < CACHE_SECONDS:
            return
        try:
            balance = await near_rpc.view_account_balance(
                self._client, self._svc.config.near_rpc_url, account
            )
        except near_rpc.NearRpcError as exc:
            log.info("balance unavailable", extra={"error": type(exc).__name__})
            return
        self.checked += 1
        if balance >= ONE_NEAR:
            self._cache[account] = (balance, self._clock())
            return
        reason = f"NEAR balance {balance} is below required minimum {ONE_NEAR}"
        if await bans.ban_for_duration(db, user_id, bans.NEAR_BALANCE_LOW, reason, BAN_DURATION):
            self._svc.sessions.forget_user(user_id)  # here at once; other replicas are notified
            self.banned += 1
            log.info("user banned for low NEAR balance", extra={"user_id": str(user_id)})


@asynccontextmanager
async def open_balance_gate(svc: Services, nursery: trio.Nursery) -> AsyncIterator[None]:
    """Feature opener (after the upstream opener: it shares that pooled client)."""
    gate = BalanceGate(svc, opened(svc.upstream, "upstream").client)
    svc.balance = gate
    nursery.start_soon(supervise, "balance", gate.run)
    try:
        yield
    finally:
        svc.balance = None
