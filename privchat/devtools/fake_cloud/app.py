"""The raw ASGI application: routing, auth, recording, common headers, compression."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from . import routes_conversations as conv
from . import routes_files as files
from . import routes_misc as misc
from . import routes_responses as responses
from .http import (
    Headers,
    HttpError,
    Reply,
    Request,
    choose_encoding,
    compress,
    error,
    json_reply,
    request_id,
)
from .knobs import KnobError, Knobs, from_headers
from .state import FakeCloud, RecordedRequest, StreamRecord
from .streaming import run_stream

Handler = Callable[..., Awaitable[Reply]]
CORS_VARY = b"origin, access-control-request-method, access-control-request-headers"

_C = r"/v1/conversations/(?P<conv_id>[^/]+)"
# (pattern, {method: handler}, needs auth)
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler], bool]] = [
    (re.compile(p), m, a)
    for p, m, a in [
        (r"/v1/conversations", {"POST": conv.create}, True),
        (r"/v1/conversations/batch", {"POST": conv.batch}, True),
        (_C, {"GET": conv.get, "POST": conv.update, "DELETE": conv.delete}, True),
        (_C + "/items", {"GET": conv.list_items, "POST": conv.create_items}, True),
        (_C + "/pin", {"POST": conv.pin, "DELETE": conv.pin}, True),
        (_C + "/archive", {"POST": conv.archive, "DELETE": conv.archive}, True),
        (_C + "/clone", {"POST": conv.clone}, True),
        (r"/v1/files", {"POST": files.upload, "GET": files.list_files}, True),
        (r"/v1/files/(?P<file_id>[^/]+)", {"GET": files.get, "DELETE": files.delete}, True),
        (r"/v1/files/(?P<file_id>[^/]+)/content", {"GET": files.content}, True),
        (r"/v1/model/list", {"GET": misc.model_list}, False),
        (r"/v1/model/(?P<name>.+)", {"GET": misc.model_get}, False),
        (r"/v1/signature/(?P<chat_id>[^/]+)", {"GET": misc.signature}, True),
        (r"/v1/attestation/report", {"GET": misc.attestation_report}, True),
        (r"/v1/auth/vpc/login", {"POST": misc.vpc_login}, False),
        (
            r"/v1/responses/(?P<response_id>[^/]+)(/cancel|/input_items)?",
            {
                "GET": misc.not_implemented,
                "DELETE": misc.not_implemented,
                "POST": misc.not_implemented,
            },
            True,
        ),
    ]
]
RESPONSES = "/v1/responses"


def make_app(fake: FakeCloud) -> Callable[..., Awaitable[None]]:
    """The ASGI app serving ``fake``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = Request(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b""),
            headers=[(bytes(k), bytes(v)) for k, v in scope["headers"]],
            body=await _read_body(receive),
        )
        recorded = RecordedRequest(
            req.method, req.path, req.query, list(req.headers), req.body, trio.current_time()
        )
        if not req.path.startswith("/_fake/"):
            fake.requests.append(recorded)
        try:
            knobs = from_headers(fake.knobs, req.headers)
        except KnobError as exc:
            await _send(send, req, fake.knobs, json_reply(400, {"error": str(exc)}))
            return
        try:
            await _dispatch(fake, req, recorded, knobs, send, receive)
        except HttpError as exc:
            await _send(send, req, knobs, exc.reply)

    return app


async def _dispatch(
    fake: FakeCloud, req: Request, recorded: RecordedRequest, knobs: Knobs, send: Any, receive: Any
) -> None:
    if req.path.startswith("/_fake/"):
        await _send(send, req, knobs, _control(fake, req))
        return
    if req.path == RESPONSES:
        if req.method != "POST":
            raise _method_not_allowed(knobs)
        _authorize(fake, req)
        await _responses(fake, req, recorded, knobs, send, receive)
        return
    for pattern, methods, needs_auth in ROUTES:
        match = pattern.fullmatch(req.path)
        if match is None:
            continue
        handler = methods.get(req.method)
        if handler is None:
            raise _method_not_allowed(knobs)
        if needs_auth:
            _authorize(fake, req)
        params = {k: v for k, v in match.groupdict().items() if v is not None}
        reply = await handler(fake, req, **params)
        await _send(send, req, knobs, reply)
        return
    if knobs.profile == "jan-2026":
        raise HttpError(Reply(404, b"", None))
    raise error(404, "Not found", "not_found_error", no_retry=True)


def _method_not_allowed(knobs: Knobs) -> HttpError:
    if knobs.profile == "jan-2026":
        return HttpError(Reply(405, b"", None))
    return error(405, "Method not allowed", "method_not_allowed", no_retry=True)


def _authorize(fake: FakeCloud, req: Request) -> None:
    value = req.header("authorization")
    if value is None:
        raise error(401, "Missing authorization header", "missing_auth_header")
    if not value.startswith("Bearer "):
        raise error(401, "Invalid authorization header format", "invalid_auth_header")
    if value[len("Bearer ") :] not in fake.api_keys:
        raise error(401, "Invalid or expired API key", "invalid_api_key")


async def _responses(
    fake: FakeCloud, req: Request, recorded: RecordedRequest, knobs: Knobs, send: Any, receive: Any
) -> None:
    body = responses.parse_body(req)
    responses.validate(body)
    encrypted = responses.check_encryption(req, body)
    if knobs.fail == "http_error":
        raise responses.http_failure(knobs)
    turn, script, commit = responses.prepare(fake, req, body, knobs, encrypted)
    if body.get("stream") is not True:
        reply = await responses.non_stream(fake, req, knobs, script, commit)
        await _send(send, req, knobs, reply)
        return
    record = StreamRecord(turn.response_id, recorded)
    fake.add_stream(record)
    job = responses.stream_job(fake, record, knobs, script, commit)
    headers: Headers = [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),  # replaced by no-store at HEAD
        (b"connection", b"keep-alive"),
    ]
    await run_stream(job, _decorate(req, knobs, headers), send, receive)


def _control(fake: FakeCloud, req: Request) -> Reply:
    if req.path == "/_fake/config" and req.method == "GET":
        return json_reply(200, fake.knobs.as_json())
    if req.path == "/_fake/config" and req.method == "POST":
        try:
            fake.configure(**json.loads(req.body or b"{}"))
        except (KnobError, ValueError, TypeError) as exc:
            return json_reply(400, {"error": str(exc)})
        return json_reply(200, fake.knobs.as_json())
    if req.path == "/_fake/reset" and req.method == "POST":
        fake.reset_knobs()
        fake.clear_recordings()
        return json_reply(200, fake.knobs.as_json())
    if req.path == "/_fake/streams" and req.method == "GET":
        summary = [
            {
                "response_id": s.response_id,
                "bytes": len(s.data),
                "completed": s.completed,
                "aborted": s.aborted,
                "failed": s.failed,
                "disconnected": s.disconnected,
                "disconnect_time": s.disconnect_time,
            }
            for s in fake.streams
        ]
        return json_reply(200, {"requests": len(fake.requests), "streams": summary})
    return json_reply(404, {"error": "unknown control route"})


def _decorate(req: Request, knobs: Knobs, headers: Headers) -> Headers:
    """Headers the upstream adds to every response (§0.3), honouring the drift profile."""
    if knobs.profile == "jan-2026":
        return headers
    out = [(k, v) for k, v in headers if k != b"cache-control"]
    out.append((b"cache-control", b"no-store"))
    out.append((b"x-request-id", request_id(req)))
    out.append((b"vary", CORS_VARY))
    return out


async def _send(send: Any, req: Request, knobs: Knobs, reply: Reply) -> None:
    headers = reply.header_list()
    body = reply.body
    encoding = None
    if (
        knobs.compress
        and knobs.profile != "jan-2026"
        and reply.compressible
        and len(body) >= 32
        and not (reply.content_type or "").startswith(("text/event-stream", "image/"))
    ):
        encoding = choose_encoding(req.header("accept-encoding"))
    if encoding:
        body = compress(body, encoding)
        headers += [(b"content-encoding", encoding.encode()), (b"vary", b"accept-encoding")]
    elif reply.abort_after is None:
        headers.append((b"content-length", str(len(body)).encode()))
    headers = _decorate(req, knobs, headers)
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    if reply.abort_after is not None:
        await send(
            {"type": "http.response.body", "body": body[: reply.abort_after], "more_body": True}
        )
        return
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
