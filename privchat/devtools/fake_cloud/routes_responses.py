"""``POST /v1/responses``: validation, in-band failures, non-streaming answers, and the plan for
a streamed answer (spec §1.2, §2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from . import ids
from .echo import count_tokens, echo_reply, last_user_text, make_title
from .events import Script, Turn, build_script, failed_event
from .http import HttpError, Reply, Request, envelope, error, json_reply
from .knobs import Knobs
from .models import find_model
from .routes_conversations import check_metadata, stored_item
from .signing import signed_text
from .sse import dumps, frame
from .state import FakeCloud, StreamRecord
from .store import Conversation, SignatureEntry

ENCRYPTION_HEADERS = ("x-signing-algo", "x-client-pub-key", "x-model-pub-key")


@dataclass
class StreamJob:
    """Everything the stream runner needs."""

    record: StreamRecord
    frames: list[bytes]
    late: list[bytes]
    drop_at: int | None
    completed_index: int | None
    knobs: Knobs
    on_completed: Callable[[bytes], None]
    on_disconnected: Callable[[], None]
    committed: bool = False


def _bad(message: str, param: str | None = None) -> HttpError:
    return error(400, message, "invalid_request_error", param)


def parse_body(req: Request) -> dict[str, Any]:
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise _bad("Expected request with `Content-Type: application/json`")
    try:
        body = json.loads(req.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"Failed to parse the request body as JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _bad("Failed to deserialize the JSON body: expected an object")
    return body


def validate(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model is required", "model")
    ranges = [
        ("temperature", 0.0, 2.0, True),
        ("top_p", 0.0, 1.0, False),
    ]
    for name, low, high, low_inclusive in ranges:
        value = body.get(name)
        if value is None:
            continue
        if (
            not isinstance(value, int | float)
            or value > high
            or value < low
            or (not low_inclusive and value == low)
        ):
            raise _bad(f"{name} is out of range", name)
    for name in ("max_output_tokens", "max_tool_calls"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise _bad(f"{name} must be at least 1", name)
    if body.get("service_tier") not in (None, "auto", "default"):
        raise _bad("service_tier must be 'auto' or 'default'", "service_tier")
    if body.get("metadata") is not None:
        check_metadata(body["metadata"])
    items = body.get("input") if isinstance(body.get("input"), list) else []
    for item in items:
        if isinstance(item, dict) and item.get("metadata") is not None:
            check_metadata(item["metadata"])
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            if not body.get("previous_response_id"):
                raise _bad("function_call_output requires previous_response_id")


def check_encryption(req: Request, body: dict[str, Any]) -> bool:
    """Validate E2EE headers; True when the request asks for encryption."""
    algo = req.header("x-signing-algo")
    if algo is not None and algo.lower() not in ("ecdsa", "ed25519"):
        raise error(400, "Invalid x-signing-algo", "invalid_parameter", "x-signing-algo")
    key = req.header("x-client-pub-key")
    if key is not None:
        try:
            raw = bytes.fromhex(key.removeprefix("0x"))
        except ValueError as exc:
            raise error(400, "Invalid x-client-pub-key", "invalid_parameter") from exc
        sizes = (32,) if (algo or "").lower() == "ed25519" else (64, 65)
        if len(raw) not in sizes:
            raise error(400, "Invalid x-client-pub-key length", "invalid_parameter")
    version = req.header("x-encryption-version")
    if version is not None and version not in ("1", "2"):
        raise error(400, "Invalid x-encryption-version", "invalid_parameter")
    encrypted = algo is not None and key is not None
    if encrypted and body.get("stream") is not True:
        raise error(400, "Encryption requires streaming", "encryption_requires_streaming")
    return encrypted


def _failed_script(message: str, type_: str, status: int, knobs: Knobs) -> Script:
    event = failed_event(message, type_, status, None, knobs.profile)
    return Script(events=[event], failed=event)


def _conversation(
    fake: FakeCloud, body: dict[str, Any], knobs: Knobs
) -> tuple[Conversation | None, Script | None]:
    raw = body.get("conversation")
    if raw is None:
        return None, None
    raw_id = raw.get("id") if isinstance(raw, dict) else raw
    core = ids.parse_prefixed(raw_id, "conv_") if isinstance(raw_id, str) else None
    if core is None:
        return None, _failed_script("Invalid conversation ID", "invalid_request_error", 400, knobs)
    conv = fake.store.live_conversation(core)
    if conv is None:
        return None, _failed_script("Conversation not found", "not_found", 404, knobs)
    return conv, None


def prepare(fake: FakeCloud, req: Request, body: dict[str, Any], knobs: Knobs, encrypted: bool):
    """Build the turn and its script. Returns (turn, script, commit)."""
    conv, failure = _conversation(fake, body, knobs)
    prev = body.get("previous_response_id")
    if failure is None and prev and prev not in fake.store.responses:
        failure = _failed_script("Previous response not found", "not_found", 404, knobs)
    if failure is None and find_model(body["model"]) is None:
        failure = _failed_script(f"Model '{body['model']}' not found", "not_found", 404, knobs)
    said = last_user_text(body.get("input"))
    title = None
    named = isinstance(conv.metadata, dict) and bool(conv.metadata.get("title")) if conv else False
    if conv is not None and conv.title is None and not named and conv.turns == 0 and not encrypted:
        title = make_title(said)
    elif knobs.title in ("before", "after") and not encrypted:
        title = make_title(said)
    parent = None
    if conv is not None and not prev:
        if conv.root_response_id is None and conv.turns == 0:
            conv.root_response_id = ids.new_id("resp_")
        parent = conv.last_response_id or conv.root_response_id
    turn = Turn(
        request=body,
        response_id=ids.new_id("resp_"),
        message_id=ids.new_id("msg_"),
        reasoning_id=ids.new_id("rs_"),
        created_at=ids.now(),
        reply=knobs.text if knobs.text is not None else echo_reply(body.get("input")),
        input_tokens=count_tokens(json.dumps(body.get("input", ""))),
        conversation_id=conv.id if conv else None,
        title=title if (knobs.title != "none" and not encrypted) else None,
        parent_id=parent,
    )
    script = failure or build_script(turn, knobs)

    def commit(response_bytes: bytes) -> None:
        assert script.final is not None
        fake.store.add_response(turn.response_id, script.final)
        fake.store.signatures[turn.response_id] = SignatureEntry(
            signed_text(req.body, response_bytes),
            trio.current_time() + knobs.signature_delay_ms / 1000,
        )
        if conv is not None:
            _store_turn(conv, body, turn, script)
            fake.store.save_conversation(conv)

    return turn, script, commit


def _store_turn(conv: Conversation, body: dict[str, Any], turn: Turn, script: Script) -> None:
    raw_input = body.get("input")
    inputs = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else raw_input
    for raw in inputs or []:
        if isinstance(raw, dict) and "role" in raw:
            try:
                item = stored_item({"type": "message", **raw}, turn.response_id)
            except HttpError:
                continue
            # The input precedes the output: same timestamp as the turn, so listing (sorted by
            # created_at, stable) keeps user before assistant even when the turn spans a second.
            item["created_at"] = turn.created_at
            conv.items.append(item)
    assert script.final is not None
    conv.items.extend(dict(item) for item in script.final["output"])
    conv.turns += 1
    conv.last_response_id = turn.response_id
    if turn.title and conv.title is None:
        conv.title = turn.title


async def non_stream(fake: FakeCloud, req: Request, knobs: Knobs, script: Script, commit) -> Reply:
    await trio.sleep(knobs.first_delay_ms / 1000)
    if script.final is None:
        failed = script.failed or {}
        status = int(failed.get("status_code", 500))
        err = failed.get("error") or {
            "message": failed.get("text", "error"),
            "type": "internal_server_error",
        }
        return json_reply(status, envelope(err["message"], err["type"]))
    body = dumps(script.final)
    if script.drop_at is not None:
        return Reply(200, body, abort_after=len(body) // 2)
    commit(body)
    return Reply(200, body)


def stream_job(
    fake: FakeCloud, record: StreamRecord, knobs: Knobs, script: Script, commit
) -> StreamJob:
    frames = [frame(e) for e in script.events]
    completed = len(frames) - 1 if script.final is not None else None

    def on_disconnected() -> None:
        fake.store.signatures[record.response_id] = SignatureEntry(None, trio.current_time())

    record.failed = script.failed is not None
    return StreamJob(
        record=record,
        frames=frames,
        late=[frame(e) for e in script.late],
        drop_at=script.drop_at,
        completed_index=completed,
        knobs=knobs,
        on_completed=commit,
        on_disconnected=on_disconnected,
    )


def http_failure(knobs: Knobs) -> HttpError:
    status = knobs.fail_status or 500
    if knobs.fail_body is not None:
        return HttpError(
            Reply(status, knobs.fail_body.encode("utf-8"), "text/plain; charset=utf-8")
        )
    types = {
        401: "invalid_api_key",
        402: "insufficient_credits",
        429: "rate_limit_exceeded",
        501: "not_implemented",
    }
    type_ = types.get(status, "invalid_request_error" if status < 500 else "internal_server_error")
    return error(status, knobs.fail_message or "Injected failure", type_, no_retry=status == 501)
