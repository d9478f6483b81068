"""The web frontend from `FRONTEND_DIR` with the SPA fallback (api.md §2.11, D13).

- a path whose last segment has a dot is a file: served if it exists, else 404;
- any other path serves the file or directory index if it exists, else `index.html` (200);
- HTML is `no-cache`; everything else is long-lived and immutable (hashed asset names);
- `..` never escapes the root; unknown `/v1/` and `/api/` paths are 404 JSON, not the SPA.
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, redirect, request, send_file
from werkzeug.security import safe_join

from ..services.registry import services
from .routing import unmatched_api_path

bp = Blueprint("frontend", __name__)

HTML_CACHE = "no-cache, no-store, must-revalidate"
ASSET_CACHE = "public, max-age=31536000, immutable"

NO_FRONTEND = """<!doctype html>
<html><head><meta charset="utf-8"><title>privchat</title></head>
<body><h1>privchat is running</h1>
<p>No web frontend is installed (set <code>FRONTEND_DIR</code> to a built frontend).</p>
<p>Service status: <a href="/health">/health</a>. API documentation: <a href="/docs">/docs</a>.</p>
</body></html>
"""


@bp.route("/", defaults={"path": ""}, methods=["GET", "HEAD"])
@bp.route("/<path:path>", methods=["GET", "HEAD"])
async def static(path: str) -> Response:
    """The web frontend (index.html for unknown non-API paths)."""
    if request.path.startswith(("/v1/", "/api/")) or request.path in ("/v1", "/api"):
        return await unmatched_api_path()
    root = Path(services().config.frontend_dir)
    last = path.rsplit("/", 1)[-1]
    target = _resolve(root, path)
    if target is not None and target.is_dir():
        if path and not request.path.endswith("/"):
            return redirect(request.path + "/", 307)  # type: ignore[return-value]
        target = target / "index.html"
    if "." in last:
        if target is None or not target.is_file():
            return Response("", status=404)
        return await _send(target)
    if target is None or not target.is_file():
        target = root / "index.html"
        if not target.is_file():
            return _no_frontend()
    return await _send(target)


def _resolve(root: Path, path: str) -> Path | None:
    joined = safe_join(str(root), path) if path else str(root)
    return None if joined is None else Path(joined)


async def _send(target: Path) -> Response:
    response = await send_file(target, conditional=True)
    content_type = response.headers.get("Content-Type", "")
    response.headers["Cache-Control"] = (
        HTML_CACHE if content_type.startswith("text/html") else ASSET_CACHE
    )
    return response


def _no_frontend() -> Response:
    response = Response(NO_FRONTEND, status=200, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = HTML_CACHE
    return response
