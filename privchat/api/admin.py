"""`/v1/admin/*`: every path under the prefix is behind the admin guard (api.md §1.4, D12)."""

from __future__ import annotations

from quart import Blueprint, Response

from ..auth.guards import authorize_admin
from .routing import unmatched_api_path

bp = Blueprint("admin", __name__, url_prefix="/v1/admin")


@bp.before_request
async def _guard() -> None:
    await authorize_admin()


@bp.route(
    "/<path:rest>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], endpoint="unknown"
)
async def unknown(rest: str) -> Response:
    """Any other admin path: 404 or 405 (admins only)."""
    return await unmatched_api_path()
