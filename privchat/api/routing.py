"""Answers for requests no route takes: 405 for a known path with another method, else 404.

The catch-all rules (the SPA fallback, the admin prefix) match any path, so werkzeug cannot tell
"unknown path" from "wrong method" for them; these helpers ask the URL map about the real routes.
"""

from __future__ import annotations

from quart import Response, current_app, request
from werkzeug.exceptions import HTTPException

from ..auth.guards import authenticate
from ..errors import ApiError

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CATCH_ALLS = frozenset({"admin.unknown", "frontend.static"})


def session_route(path: str) -> bool:
    """Routes behind the session guard: all of `/v1/` but sign-in and attestation."""
    if not path.startswith("/v1/"):
        return False
    if path.startswith("/v1/auth/"):
        return path == "/v1/auth/logout"
    return not path.startswith("/v1/attestation/")


def allowed_methods(path: str) -> set[str]:
    """The methods real (non catch-all) routes serve at `path`."""
    adapter = current_app.url_map.bind("privchat")
    allowed = set()
    for method in METHODS:
        try:
            endpoint, _ = adapter.match(path, method=method)
        except HTTPException:
            continue
        if endpoint not in CATCH_ALLS:
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")
    return allowed


async def method_not_allowed(allowed: set[str]) -> Response:
    """405 with `Allow`; on a session route the guard answers first (api.md §1.1)."""
    if session_route(request.path):
        await authenticate()
    return Response("", status=405, headers={"Allow": ",".join(sorted(allowed))})


async def unmatched_api_path() -> Response:
    """An API path no route serves with this method: 405 when others do, else 404 JSON (D13)."""
    allowed = allowed_methods(request.path)
    if allowed:
        return await method_not_allowed(allowed)
    raise ApiError(404, "Not found")
