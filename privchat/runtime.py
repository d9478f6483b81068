"""One privchat process: trio.run -> trio-asyncio loop -> services nursery -> hypercorn.

`serve()` is the whole lifecycle (D10): SIGTERM/SIGINT stop the listeners, in-flight requests get
`SHUTDOWN_GRACE_SECONDS` to finish and are then cancelled, queued activity rows are written, the
pool closes, and the process exits 0.
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial

import httpx2
import trio
import trio_asyncio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from . import hypercorn_fixes
from .app import create_app
from .attestation.service import connect_attestation
from .auth import sessions
from .auth.session_cache import SessionCache
from .config import Config
from .observability import Metrics
from .services.activity import ActivityWriter
from .services.changes import ChangeFeed
from .services.registry import Services
from .services.supervisor import every, supervise
from .startup import StartupError, bind_hint, explained_database_errors, first_error
from .store import Database
from .store.migrate import migrate
from .store.patroni import LeaderFollower, leader_dsn

log = logging.getLogger(__name__)

CLEANUP_PERIOD = 600.0
OAUTH_STATE_TTL = "10 minutes"
CHANGE_FEED_WAIT = 5.0  # at startup: how long to wait for the change feed to listen


def hypercorn_config(config: Config, bind: str | None = None) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [bind or f"{config.server_host}:{config.server_port}"]
    hc.keep_alive_timeout = config.keep_alive_timeout
    hc.graceful_timeout = config.shutdown_grace_seconds
    hc.accesslog = None
    if config.access_log:
        # Through privchat's logging: one JSON object per line with LOG_FORMAT=json, request text
        # escaped in text; at INFO whatever LOG_LEVEL is. No referer or user agent: a referer
        # can carry a session token.
        access = logging.getLogger("hypercorn.access")
        access.setLevel(logging.INFO)
        hc.accesslog = access  # type: ignore[assignment]
        hc.access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)s'
    hc.errorlog = logging.getLogger("hypercorn.error")  # type: ignore[assignment]
    hc.include_server_header = False
    if config.tls_cert_file and config.tls_key_file:
        hc.certfile = str(config.tls_cert_file)
        hc.keyfile = str(config.tls_key_file)
    return hc


async def _cleanup(db: Database) -> None:
    """D9: expired sessions and abandoned OAuth states are deleted periodically."""
    removed = await sessions.delete_expired(db)
    status = await db.execute(
        f"DELETE FROM oauth_states WHERE created_at < NOW() - INTERVAL '{OAUTH_STATE_TTL}'"
    )
    nonces = await db.execute(
        "DELETE FROM near_used_nonces WHERE used_at < NOW() - INTERVAL '10 minutes'"
    )
    log.info(
        "expired rows cleaned",
        extra={
            "sessions": removed,
            "oauth_flows": int(status.split()[-1]),
            "near_nonces": int(nonces.split()[-1]),
        },
    )


@asynccontextmanager
async def open_services(config: Config) -> AsyncIterator[Services]:
    """The DB pool (migrated), the supervised workers, and every feature's long-lived service.

    Must run inside `trio_asyncio.open_loop()`.
    """
    async with AsyncExitStack() as stack:
        follower: LeaderFollower | None = None
        # Everything that can refuse to start is checked before anything is written.
        attestor = await stack.enter_async_context(connect_attestation(config))
        dsn = config.database_dsn()
        if config.patroni_enabled:
            patroni = await stack.enter_async_context(httpx2.AsyncClient())
            dsn, cluster = await leader_dsn(patroni, config)
        async with explained_database_errors(config, dsn):
            db = await Database.connect(
                dsn,
                max_size=config.database_max_connections,
                tls=config.database_tls_enabled,
                read_write=config.patroni_enabled,
            )
        stack.push_async_callback(db.close)
        if config.patroni_enabled:
            follower = LeaderFollower(config, db, patroni, cluster)
        await migrate(db, config.database_migrations_path)
        if config.telemetry_otlp_endpoint:
            log.warning("TELEMETRY_OTLP_ENDPOINT is set, but metrics are served at /metrics only")
        activity = ActivityWriter(db)
        svc = Services(
            config,
            db,
            activity,
            Metrics(config.environment),
            SessionCache(ttl=config.session_cache_seconds),
            patroni=follower,
            attestation=attestor,
        )
        svc.changes = ChangeFeed()
        svc.metrics.track_session_cache(svc.sessions)
        svc.metrics.track_activity(activity)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervise, "activity", activity.run)
            if svc.sessions.ttl > 0:
                nursery.start_soon(supervise, "session-cache", partial(svc.sessions.run, db))
            nursery.start_soon(supervise, "change-feed", partial(svc.changes.run, db))
            with trio.move_on_after(CHANGE_FEED_WAIT):  # else caches stay bypassed until it does
                await svc.changes.wait_listening()
            nursery.start_soon(
                supervise, "cleanup", partial(every, CLEANUP_PERIOD, partial(_cleanup, db))
            )
            if follower is not None:
                nursery.start_soon(supervise, "patroni", follower.run)
            from .features import open_features

            async with open_features(svc, nursery):
                yield svc
            nursery.cancel_scope.cancel()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await activity.drain()


@dataclass(frozen=True)
class Running:
    """What `serve` reports once it listens: the bound URLs and the live services."""

    binds: list[str]
    services: Services

    @property
    def url(self) -> str:
        return self.binds[0]


async def serve(
    config: Config,
    *,
    shutdown: trio.Event | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run privchat until `shutdown` is set or SIGTERM/SIGINT arrives."""
    hypercorn_fixes.install()
    async with trio_asyncio.open_loop(), open_services(config) as svc:
        if shutdown is None:
            shutdown = svc.draining
        else:
            svc.draining = shutdown
        app = create_app(svc)
        _tune_gc()
        async with trio.open_nursery() as nursery:
            if handle_signals:
                nursery.start_soon(_wait_for_signals, shutdown)

            async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
                # Returns once the listeners closed and in-flight requests ended, or were
                # cancelled after the grace period.
                await hypercorn_serve(
                    app,
                    hypercorn_config(config),
                    shutdown_trigger=partial(_drained, shutdown, config.shutdown_drain_seconds),
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()

            bind = f"{config.server_host}:{config.server_port}"
            try:
                binds = await nursery.start(run_server)
            except Exception as exc:
                hint = bind_hint(first_error(exc), bind)
                if hint is None:
                    raise
                raise StartupError(hint) from None
            log.info("privchat serving", extra={"binds": binds})
            task_status.started(Running(binds, svc))
    log.info("privchat stopped")


def _tune_gc() -> None:
    """What startup built lives as long as the process: keep it out of every later collection.
    And collect the young generation less often, so the objects of a request mostly die by
    reference count before a collection promotes them: full collections (30-70 ms stalls of the
    whole process with ~100k live objects on this machine) became rare, 9 to 2 in a quick
    bench_proxy run, and CPU per stream went down from 2.5-3.0 to about 2.3 ms."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


async def _drained(shutdown: trio.Event, drain_seconds: float) -> None:
    """Hypercorn stops accepting once this returns: `SHUTDOWN_DRAIN_SECONDS` after shutdown was
    requested. Meanwhile `/ready` answers 503, so a load balancer sends new requests elsewhere
    before this replica closes its listeners."""
    await shutdown.wait()
    await trio.sleep(drain_seconds)


async def _wait_for_signals(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("shutdown requested", extra={"signal": signal.Signals(signum).name})
            shutdown.set()
            return
