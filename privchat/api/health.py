"""`GET /health` (api.md §2.1) and `GET /metrics` (Prometheus text format)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response

from .. import __version__
from ..errors import json_response
from ..services.registry import services

bp = Blueprint("health", __name__)


@bp.get("/health")
async def health() -> Response:
    return json_response({"status": "ok", "version": __version__})


@bp.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(services().metrics.registry), content_type=CONTENT_TYPE_LATEST)
