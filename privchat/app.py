"""The application factory: blueprints, error handlers, CORS, request ids and metrics."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .api.routing import unmatched_api_path
from .cors import VARY, CorsPolicy
from .errors import ApiError, ProxyError, TextError, json_response, outage_cause, unavailable
from .observability import MetricsMiddleware, RouteLabels
from .services.registry import Services

log = logging.getLogger(__name__)

API_PREFIXES = ("/v1/", "/api/")
# Bodies of early rejections are drained up to this size so the keep-alive connection stays
# usable (design pitfall 1); anything larger closes the connection instead.
DRAIN_LIMIT = 1024 * 1024
DRAIN_SECONDS = 5.0
FINAL_SEND_SECONDS = 10.0


class _HTTPConnection(TrioASGIHTTPConnection):
    """quart-trio's connection, with the last body message sent under a shield.

    quart-trio cancels the request's nursery when the server reports `http.disconnect`, and
    hypercorn reports it from inside the app's final `send` (the stream closes there). Unshielded,
    that cancellation interrupts hypercorn's close path half-way: a `Connection: close` socket is
    never closed and a keep-alive one can wedge (design pitfall 1). The final message is tiny; a
    deadline bounds it all the same.
    """

    async def handle_request(self, nursery: trio.Nursery, request: Any, send: Any) -> None:  # type: ignore[override]
        async def send_last_shielded(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.move_on_after(FINAL_SEND_SECONDS) as scope:
                    scope.shield = True
                    await send(message)
            else:
                await send(message)

        await super().handle_request(nursery, request, send_last_shielded)


class PrivchatApp(QuartTrio):
    asgi_http_class = _HTTPConnection


def create_app(svc: Services) -> QuartTrio:
    app = PrivchatApp("privchat", static_folder=None)  # files come from FRONTEND_DIR
    app.config.update(
        RESPONSE_TIMEOUT=None,  # streams end when the upstream ends (pitfall 2); idle timeouts are ours
        BODY_TIMEOUT=svc.config.body_idle_timeout,  # our reader (api/body.py) times each chunk
        MAX_CONTENT_LENGTH=svc.config.max_upload_bytes,
        PROVIDE_AUTOMATIC_OPTIONS=False,
        JSON_SORT_KEYS=False,
    )
    app.extensions["privchat"] = svc
    # OpenAPI document and Swagger UI, at the reference's paths.
    from .api import openapi

    openapi.install(app)
    cors = CorsPolicy.parse(svc.config.cors_allowed_origins)
    app.asgi_app = MetricsMiddleware(  # type: ignore[method-assign]
        app.asgi_app, svc.metrics, RouteLabels(app.url_map)
    )

    from .api import blueprints

    for blueprint in blueprints():
        app.register_blueprint(blueprint)

    @app.before_request
    async def _begin() -> Response | None:
        incoming = request.headers.get("x-request-id", "")
        g.request_id = (
            incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else str(uuid.uuid4())
        )
        if request.method == "OPTIONS":
            response = Response("", status=200)
            response.headers["Access-Control-Allow-Methods"] = "*"
            response.headers["Access-Control-Allow-Headers"] = "*"
            return response
        return None

    @app.after_request
    async def _finish(response: Response) -> Response:
        origin = request.headers.get("origin")
        if cors.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        if request.method != "OPTIONS":
            response.headers["Access-Control-Expose-Headers"] = "*"
        response.headers.add("Vary", VARY)
        if "x-request-id" not in response.headers:
            response.headers["x-request-id"] = g.get("request_id") or str(uuid.uuid4())
        await _drain_unread_body(response)
        return response

    @app.errorhandler(ApiError)
    async def _api_error(error: ApiError) -> Response:
        if error.status >= 500 and outage_cause(error):
            return unavailable("api")
        return error.response()

    @app.errorhandler(ProxyError)
    async def _proxy_error(error: ProxyError) -> Response:
        if error.status >= 500 and outage_cause(error):
            return unavailable("proxy")
        return error.response()

    @app.errorhandler(TextError)
    async def _text_error(error: TextError) -> Response:
        return error.response()

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response | HTTPException:
        status = error.code or 500
        if status == 405 and isinstance(error, MethodNotAllowed):
            if request.path.startswith(API_PREFIXES):
                # The SPA fallback matches GET on any path, so ask which real routes match (D13).
                try:
                    return await unmatched_api_path()
                except ApiError as api_error:  # error handlers do not chain
                    return api_error.response()
            allowed = sorted(set(error.valid_methods or ()) - {"OPTIONS"})
            return Response("", status=405, headers={"Allow": ",".join(allowed)})
        if status == 404 and request.path.startswith(API_PREFIXES):
            return ApiError(404, "Not found").response()
        if status == 413:
            return TextError(
                413, "Failed to buffer the request body: length limit exceeded"
            ).response()
        if status == 408:
            return Response("Request body timeout", status=408, headers={"Connection": "close"})
        return Response(error.description or "", status=status, content_type="text/plain")

    @app.errorhandler(Exception)
    async def _crash(error: Exception) -> Response:
        if outage_cause(error):
            log.warning("database unavailable", extra={"error": str(error)})
            return unavailable("api")
        log.error("unhandled error", exc_info=error)
        return json_response(
            {"code": "internal_server_error", "message": "Internal server error"}, 500
        )

    return app


async def _drain_unread_body(response: Response) -> None:
    """Read (bounded) what the client is still sending when we answered before reading it."""
    body: Any = request.body
    if getattr(body, "_complete", None) is None or body._complete.is_set():
        return
    too_big = request.content_length is not None and request.content_length > DRAIN_LIMIT
    # A stalled body will not arrive now either; a too large one is not worth reading.
    if too_big or response.status_code in (408, 413):
        response.headers["Connection"] = "close"
        return
    try:
        with _deadline(DRAIN_SECONDS):
            received = 0
            async for chunk in body:
                received += len(chunk)
                if received > DRAIN_LIMIT:
                    response.headers["Connection"] = "close"
                    return
    except Exception:
        response.headers["Connection"] = "close"


def _deadline(seconds: float) -> Any:
    return trio.move_on_after(seconds)
