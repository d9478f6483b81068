"""The services of one process, shared by every request handler.

Handlers call `services()`; the runtime builds one `Services` per process and hands it to the app.
The optional members are filled in by the features that own them (see `features.py`) before
requests are served; a handler that needs one reads it through `opened()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import trio
from quart import current_app

from ..auth.session_cache import SessionCache
from ..config import Config
from ..observability import Metrics
from ..store import Database

if TYPE_CHECKING:
    from ..attestation.service import Attestor
    from ..ratelimit import RateLimiter
    from ..store.patroni import LeaderFollower
    from ..upstream.client import KeySource, Upstream
    from ..upstream.vpc import VpcCredentials
    from .activity import ActivityWriter
    from .balance import BalanceGate
    from .changes import ChangeFeed
    from .model_settings import ModelSettingsCache
    from .response_owners import ResponseOwners

T = TypeVar("T")


@dataclass
class Services:
    config: Config
    db: Database
    activity: ActivityWriter
    metrics: Metrics
    sessions: SessionCache = field(default_factory=lambda: SessionCache(ttl=0))
    # Registered by the feature openers (features.py) and by the runtime (patroni):
    upstream: Upstream | None = None
    upstream_key_source: KeySource | None = None  # VPC mode: the key source of `upstream`
    vpc_credentials: VpcCredentials | None = None  # VPC mode: what /admin/vpc/revoke revokes
    ratelimit: RateLimiter | None = None
    model_settings: ModelSettingsCache | None = None
    response_owners: ResponseOwners | None = None  # owner rows written beside the stream
    balance: BalanceGate | None = None  # NEAR balance checks (after `upstream`)
    attestation: Attestor | None = None
    patroni: LeaderFollower | None = None
    changes: ChangeFeed | None = None  # cross-replica cache invalidation (model settings, VPC)
    draining: trio.Event = field(default_factory=trio.Event)  # set on SIGTERM: /ready says 503


def services() -> Services:
    return current_app.extensions["privchat"]  # type: ignore[no-any-return]


def opened(member: T | None, name: str) -> T:
    """A member that its feature opener registers before any request is served."""
    if member is None:
        raise RuntimeError(f"services.{name} is not open: its feature opener did not run")
    return member
