"""Conversation routes (spec §1.3, §3)."""

from __future__ import annotations

import json
from typing import Any

from . import ids
from .http import HttpError, Reply, Request, error, json_reply, parse_json_body, unprocessable
from .state import FakeCloud
from .store import Conversation

METADATA_LIMIT = 16384
BATCH_LIMIT = 1000


def check_metadata(metadata: Any) -> None:
    if len(json.dumps(metadata, separators=(",", ":")).encode()) > METADATA_LIMIT:
        raise error(
            400, "metadata is too large (max 16384 bytes when serialized)", "invalid_request_error"
        )


def _core(raw: str) -> str:
    core = ids.parse_prefixed(raw, "conv_")
    if core is None:
        raise error(400, f"Invalid conversation ID: {raw}", "invalid_request_error")
    return core


def lookup(fake: FakeCloud, raw: str) -> Conversation:
    conv = fake.store.live_conversation(_core(raw))
    if conv is None:
        raise error(404, "Conversation not found", "not_found_error")
    return conv


def _object_body(req: Request) -> dict[str, Any]:
    body = parse_json_body(req)
    if not isinstance(body, dict):
        raise unprocessable("expected a JSON object")
    return body


async def create(fake: FakeCloud, req: Request) -> Reply:
    body = _object_body(req)
    metadata = body.get("metadata") or {}
    check_metadata(metadata)
    raw_items = body.get("items")
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, list):
        raise unprocessable("items: invalid type, expected a sequence")
    if len(raw_items) > 20:
        raise error(400, "items must contain at most 20 entries", "invalid_request_error")
    items = [stored_item(raw) for raw in raw_items]
    conv = Conversation(core=ids.new_id(""), created_at=ids.now(), metadata=metadata, items=items)
    fake.store.add_conversation(conv)
    return json_reply(201, conv.as_json())


async def batch(fake: FakeCloud, req: Request) -> Reply:
    body = _object_body(req)
    raw_ids = body.get("ids")
    if not isinstance(raw_ids, list) or not all(isinstance(i, str) for i in raw_ids):
        raise unprocessable("ids: invalid type, expected a sequence of strings")
    if not raw_ids or len(raw_ids) > BATCH_LIMIT:
        raise error(400, "ids must contain between 1 and 1000 entries", "invalid_request_error")
    data, missing = [], []
    for raw in raw_ids:
        conv = fake.store.live_conversation(_core(raw))
        if conv is None:
            missing.append(raw)
        else:
            data.append(conv.as_json())
    return json_reply(200, {"object": "list", "data": data, "missing_ids": missing})


async def get(fake: FakeCloud, req: Request, conv_id: str) -> Reply:
    return json_reply(200, lookup(fake, conv_id).as_json())


async def update(fake: FakeCloud, req: Request, conv_id: str) -> Reply:
    conv = lookup(fake, conv_id)
    body = _object_body(req)
    metadata = body.get("metadata") or {}
    check_metadata(metadata)
    # The update replaces the metadata, the generated title included (it lives there).
    conv.metadata = metadata
    conv.title = None
    fake.store.save_conversation(conv)
    return json_reply(200, conv.as_json())


async def delete(fake: FakeCloud, req: Request, conv_id: str) -> Reply:
    conv = lookup(fake, conv_id)
    conv.deleted = True
    fake.store.save_conversation(conv)
    return json_reply(200, {"id": conv_id, "object": "conversation.deleted", "deleted": True})


async def pin(fake: FakeCloud, req: Request, conv_id: str) -> Reply:
    conv = lookup(fake, conv_id)
    conv.pinned_at = ids.now() if req.method == "POST" else None
    fake.store.save_conversation(conv)
    return json_reply(200, conv.as_json())


async def archive(fake: FakeCloud, req: Request, conv_id: str) -> Reply:
    conv = lookup(fake, conv_id)
    conv.archived_at = ids.now() if req.method == "POST" else None
    fake.store.save_conversation(conv)
    return json_reply(200, conv.as_json())


async def clone(fake: FakeCloud, req: Request, conv_id: str) -> Reply:
    source = lookup(fake, conv_id)
    copy = Conversation(
        core=ids.new_id(""),
        created_at=ids.now(),
        metadata=json.loads(json.dumps(source.metadata)),
        cloned_from_id=source.id,
        title=source.title,
        items=[dict(item) for item in source.items],
        turns=source.turns,
    )
    fake.store.add_conversation(copy)
    return json_reply(201, copy.as_json())


def item_list(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else "",
        "last_id": items[-1]["id"] if items else "",
        "has_more": has_more,
    }


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    if name not in params:
        return default
    try:
        return int(params[name])
    except ValueError as exc:
        raise HttpError(
            Reply(
                400,
                f"Failed to deserialize query string: {name}".encode(),
                "text/plain; charset=utf-8",
            )
        ) from exc


async def list_items(fake: FakeCloud, req: Request, conv_id: str) -> Reply:
    conv = lookup(fake, conv_id)
    params = req.params
    limit = _int_param(params, "limit", 100)
    if limit <= 0:
        raise error(400, "Limit must be positive", "invalid_parameter", "limit")
    if limit > 1000:
        raise error(400, "Limit cannot exceed 1000", "invalid_parameter", "limit")
    if _int_param(params, "offset", 0) < 0:
        raise error(400, "Offset must be non-negative", "invalid_parameter", "offset")
    items = sorted(conv.items, key=lambda i: i["created_at"])  # stable: insertion order
    start = 0
    after = params.get("after")
    if after:
        positions = [n for n, item in enumerate(items) if item["id"] == after]
        if not positions:
            raise error(400, f"Invalid 'after' cursor: {after}", "invalid_request_error", "after")
        start = positions[0] + 1
    page = items[start : start + limit + 1]
    return json_reply(200, item_list(page[:limit], len(page) > limit))


def stored_item(raw: Any, response_id: str | None = None) -> dict[str, Any]:
    """Validate an input item for items-create and return its stored form."""
    if not isinstance(raw, dict) or raw.get("type") != "message":
        raise error(400, 'Each item must be a message (type "message")', "invalid_request_error")
    role = raw.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise error(400, "Invalid role", "invalid_request_error")
    content = _parts(raw.get("content"), role)
    item: dict[str, Any] = {
        "type": "message",
        "id": ids.new_id("msg_"),
        "response_id": response_id or ids.new_id("resp_"),
        "next_response_ids": [],
        "created_at": ids.now(),
        "status": "completed",
        "role": role,
        "content": content,
    }
    if raw.get("metadata") is not None:
        check_metadata(raw["metadata"])
        item["metadata"] = raw["metadata"]
    item["model"] = raw.get("model") or ""
    return item


def _parts(content: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        text = content.strip()
        if not text:
            raise error(400, "Message content cannot be empty", "invalid_request_error")
        return [{"type": "input_text", "text": text}]
    if not isinstance(content, list) or not content:
        raise error(400, "Message content cannot be empty", "invalid_request_error")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            text = str(part.get("text", "")).strip()
            if not text:
                raise error(400, "Message content cannot be empty", "invalid_request_error")
            shaped: dict[str, Any] = {"type": kind, "text": text}
            if kind == "output_text":
                shaped["annotations"] = part.get("annotations") or []
            parts.append(shaped)
        elif kind in ("input_image", "input_file"):
            parts.append(dict(part))
        else:
            raise error(400, f"Unsupported content part type: {kind}", "invalid_request_error")
    return parts


async def create_items(fake: FakeCloud, req: Request, conv_id: str) -> Reply:
    conv = lookup(fake, conv_id)
    body = _object_body(req)
    raw_items = body.get("items")
    if not isinstance(raw_items, list):
        raise unprocessable("missing field `items`")
    if not 1 <= len(raw_items) <= 20:
        raise error(400, "items must contain between 1 and 20 entries", "invalid_request_error")
    created = [stored_item(raw) for raw in raw_items]
    conv.items.extend(created)
    fake.store.save_conversation(conv)
    return json_reply(200, item_list(created, False))
