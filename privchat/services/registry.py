"""The services of one process, shared by every request handler.

Handlers call `services()`; the runtime builds one `Services` per process and hands it to the app.
Optional members are filled in by the features that own them (upstream client, attestation, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quart import current_app

from ..auth.session_cache import SessionCache
from ..config import Config
from ..observability import Metrics
from ..store import Database

if TYPE_CHECKING:
    from .activity import ActivityWriter


@dataclass
class Services:
    config: Config
    db: Database
    activity: ActivityWriter
    metrics: Metrics
    sessions: SessionCache = field(default_factory=lambda: SessionCache(ttl=0))
    # Features register their own long-lived objects here (upstream client, attestation, ...).
    extras: dict[str, Any] = field(default_factory=dict)


def services() -> Services:
    return current_app.extensions["privchat"]  # type: ignore[no-any-return]
