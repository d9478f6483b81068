"""VPC mode: the upstream API key is obtained by an HMAC-signed login (platform.md §3, api.md §4.3).

On when `VPC_SHARED_SECRET_FILE` is set. The key is looked up in this order: this process's
memory, the `app_config` rows `vpc_api_key` + `vpc_organization_id` (the legacy row
`vpc_refresh_token` is deleted when seen), then a login:
`POST {OPENAI_BASE_URL}/auth/vpc/login` with `{"timestamp", "signature", "client_id"}`, where
the signature is hex HMAC-SHA256 of the decimal timestamp keyed by the shared secret. The key
is resolved once at startup (failure stops startup) and kept until an admin revokes it, through
any replica: deleting or replacing the stored rows makes every replica forget its key in memory
(the change feed, kind `vpc`), and the next upstream call reads the rows or logs in again.

Unlike the reference, the login has a deadline, and its error never carries the response body.
Nothing here logs the secret, the signature or the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import httpx2
import trio

from ..config import ConfigError
from ..store import Database

if TYPE_CHECKING:
    from ..services.registry import Services

log = logging.getLogger(__name__)

API_KEY_ROW = "vpc_api_key"
ORGANIZATION_ROW = "vpc_organization_id"
LEGACY_ROW = "vpc_refresh_token"
LOGIN_SECONDS = 10.0
VPC_KIND = "vpc"  # the change feed's kind for the stored key (services/changes.py)


class VpcLoginError(Exception):
    """The VPC login failed; the message has the status, never the response body."""


def signature(secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode(), hashlib.sha256).hexdigest()


def login_body(secret: str, client_id: str, timestamp: int) -> dict[str, Any]:
    return {
        "timestamp": timestamp,
        "signature": signature(secret, timestamp),
        "client_id": client_id,
    }


def credentials_from(answer: Any) -> tuple[str, str]:
    """(api_key, organization id) from a login answer; every field the reference requires."""
    organization = answer.get("organization") if isinstance(answer, dict) else None
    fields = (
        answer.get("api_key") if isinstance(answer, dict) else None,
        answer.get("access_token") if isinstance(answer, dict) else None,
        answer.get("refresh_token") if isinstance(answer, dict) else None,
        organization.get("id") if isinstance(organization, dict) else None,
    )
    if not all(isinstance(value, str) for value in fields):
        raise VpcLoginError("VPC login answer lacks api_key, tokens or organization.id")
    return fields[0], fields[3]  # type: ignore[return-value]


class VpcCredentials(Protocol):
    """The hook for VPC mode (api.md §4.3): registered as `svc.vpc_credentials` by the
    VPC key source. `revoke()` deletes the `app_config` rows `vpc_api_key` and
    `vpc_organization_id` and forgets the in-memory key so the next upstream call logs in again."""

    async def revoke(self) -> None: ...


class VpcKeySource:
    """The `KeySource` of VPC mode, and the revoke hook of `POST /v1/admin/vpc/revoke`."""

    def __init__(
        self, db: Database, client: httpx2.AsyncClient, base_url: str, secret: str, client_id: str
    ) -> None:
        self._db = db
        self._client = client
        self._login_url = base_url.rstrip("/") + "/auth/vpc/login"
        self._secret = secret
        self._client_id = client_id
        self._key: str | None = None
        self._lock = trio.Lock()
        self.logins = 0
        self.generation = 0  # bumped by every invalidation: a key read before one is not kept

    async def key(self) -> str:
        key = self._key
        if key is None:
            async with self._lock:  # one login at a time; the others wait for its key
                key = self._key
                if key is None:
                    generation = self.generation
                    key = await self._stored() or await self._login()
                    if generation == self.generation:
                        self._key = key
        return key

    def invalidate(self) -> None:
        """Forget the key in memory (revoked here or, through the change feed, elsewhere)."""
        self.generation += 1
        self._key = None

    async def revoke(self) -> None:
        """Forget the key here and in the database; the next upstream call logs in again."""
        await self._db.execute(
            "DELETE FROM app_config WHERE key = ANY($1::text[])", [API_KEY_ROW, ORGANIZATION_ROW]
        )
        self.invalidate()  # other replicas hear of it from the change feed (migration 0005)

    async def _stored(self) -> str | None:
        try:
            await self._db.execute("DELETE FROM app_config WHERE key = $1", LEGACY_ROW)
        except Exception as exc:
            log.warning("legacy VPC row not deleted", extra={"error": type(exc).__name__})
        rows = await self._db.fetch(
            "SELECT key, value FROM app_config WHERE key = ANY($1::text[])",
            [API_KEY_ROW, ORGANIZATION_ROW],
        )
        stored = {row["key"]: row["value"] for row in rows}
        if stored.get(API_KEY_ROW) and stored.get(ORGANIZATION_ROW):
            return stored[API_KEY_ROW]
        return None

    async def _login(self) -> str:
        body = login_body(self._secret, self._client_id, int(time.time()))
        try:
            with trio.fail_after(LOGIN_SECONDS):
                response = await self._client.post(self._login_url, json=body)
        except (httpx2.HTTPError, trio.TooSlowError) as exc:
            raise VpcLoginError(f"VPC login unreachable: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise VpcLoginError(f"VPC login answered HTTP {response.status_code}")
        try:
            api_key, organization = credentials_from(response.json())
        except ValueError:
            raise VpcLoginError("VPC login answer is not JSON") from None
        self.logins += 1
        try:
            if api_key:
                await self._store(API_KEY_ROW, api_key)
            await self._store(ORGANIZATION_ROW, organization)
        except Exception as exc:  # the key still works for this process
            log.warning("VPC credentials not stored", extra={"error": type(exc).__name__})
        log.info("VPC login succeeded")
        return api_key

    async def _store(self, key: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO app_config (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = NOW()",
            key,
            value,
        )


@asynccontextmanager
async def open_vpc(svc: Services, nursery: trio.Nursery) -> AsyncIterator[None]:
    """Feature opener: in VPC mode, the key source (resolved now) for the upstream client."""
    config = svc.config
    if config.vpc_shared_secret is None:
        yield
        return
    async with httpx2.AsyncClient() as client:
        source = VpcKeySource(
            svc.db, client, config.openai_base_url, config.vpc_shared_secret, config.vpc_client_id
        )
        try:
            await source.key()
        except VpcLoginError as exc:
            raise ConfigError(f"VPC_SHARED_SECRET_FILE: {exc}") from None
        svc.upstream_key_source = source
        svc.vpc_credentials = source
        if svc.changes is not None:  # a revoke through another replica, or in SQL
            svc.changes.subscribe(VPC_KIND, lambda _key: source.invalidate(), source.invalidate)
        try:
            yield
        finally:
            svc.upstream_key_source = svc.vpc_credentials = None
