"""`GET /health` (api.md §2.1), `GET /ready` (for load balancers) and `GET /metrics`."""

from __future__ import annotations

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response
from quart_schema import document_response

from .. import __version__
from ..errors import json_response
from ..services.registry import services
from . import schemas

bp = Blueprint("health", __name__)


@bp.get("/health")
@document_response(schemas.Health)
async def health() -> Response:
    """Service health: status and version (no sign-in needed)."""
    return json_response({"status": "ok", "version": __version__})


READY_CHECK_SECONDS = 1.0


@bp.get("/ready")
async def ready() -> Response:
    """200 while this replica should get new requests; 503 as soon as it drains (SIGTERM) or
    cannot reach a writable database within a second. `/health` stays 200 meanwhile."""
    svc = services()
    if svc.draining.is_set():
        return json_response({"status": "draining"}, 503)
    with trio.move_on_after(READY_CHECK_SECONDS):
        try:
            await svc.db.execute("SELECT 1")
            return json_response({"status": "ready"})
        except Exception:  # any failure means: not ready
            pass
    return json_response({"status": "database unavailable"}, 503, {"Retry-After": "1"})


@bp.get("/metrics")
async def metrics() -> Response:
    """Prometheus metrics of this process.

    Rendered on a worker thread: a scrape never holds up the requests being served.
    """
    svc = services()
    tasks = trio.lowlevel.current_statistics().tasks_living
    svc.metrics.sample_runtime(tasks, svc.db.size, svc.db.idle)
    text = await trio.to_thread.run_sync(generate_latest, svc.metrics.registry)
    return Response(text, content_type=CONTENT_TYPE_LATEST)
