"""Ownership of the ids a `/v1/responses` body names, checked before anything goes upstream.

The upstream key is shared by every user, so the upstream would resolve any user's id; privchat
checks each one against the caller (docs/ownership.md lists the fields):

- `conversation` (string or `{"id"}`): the caller's `conversations` row (D5; checked by the
  route together with the `updated_at` bump);
- `previous_response_id`: the caller's `response_owners` row (waited for while the caller's
  own stream is still writing it, `services.response_owners`);
- every `file_id` anywhere in `input` (`input_file`, `input_image`, ...) and the `file_ids` of a
  `code_interpreter` tool's container: the caller's `files` rows;
- `item_reference` items in `input`: the item must be in the request's own `conversation` (which
  the caller owns), looked up in that conversation's items upstream; without a `conversation`
  there is nothing to look it up in, so it is not found;
- `vector_store_ids` of a `file_search` tool: privchat has no vector stores, so none is the
  caller's.

A foreign, unknown or malformed id is 404 with the fetch routes' message for its kind.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from .errors import ProxyError, not_found
from .services.response_owners import ResponseOwners
from .store import conversations, files
from .store.db import Database
from .upstream import UpstreamError, get_upstream

log = logging.getLogger(__name__)

ITEM_PAGE = 1000  # the upstream items list's largest page
MAX_ITEM_PAGES = 100  # a conversation longer than this many pages is not searched further


@dataclass
class Named:
    """The references of one request body, other than its `conversation`."""

    previous_response: Any = None
    files: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    vector_stores: list[Any] = field(default_factory=list)


def _walk(value: Any) -> list[dict[str, Any]]:
    """Every object inside `value` (iteratively: nesting depth cannot exhaust the stack)."""
    out, stack = [], [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            out.append(current)
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return out


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def named(body: Any) -> Named:
    found = Named()
    if not isinstance(body, dict):
        return found
    found.previous_response = body.get("previous_response_id")
    for obj in _walk(body.get("input")):
        if "file_id" in obj and obj["file_id"] is not None:
            found.files.add(obj["file_id"] if isinstance(obj["file_id"], str) else "")
        if obj.get("type") == "item_reference":
            item = obj.get("id")
            found.items.add(item if isinstance(item, str) else "")
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        stores = tool.get("vector_store_ids")
        if stores is not None:
            found.vector_stores.extend(_strings(stores))
        container = tool.get("container")
        if isinstance(container, dict) and container.get("file_ids") is not None:
            for file_id in _strings(container["file_ids"]):
                found.files.add(file_id if isinstance(file_id, str) else "")
    return found


async def check(
    db: Database,
    owners: ResponseOwners,
    user_id: uuid.UUID,
    body: Any,
    conversation: str | None,
) -> None:
    """Raise the 404 of the first reference the caller does not own. `conversation` is the
    request's conversation id, already known to be the caller's (or None). A response id whose
    owner row is still being written for the caller is waited for (`ResponseOwners.owns`)."""
    refs = named(body)
    try:
        previous = refs.previous_response
        if previous is not None and not (
            isinstance(previous, str) and await owners.owns(previous, user_id)
        ):
            raise not_found("Response not found")
        if refs.files and not await files.owns_all(db, refs.files, user_id):
            raise not_found("File not found")
    except ProxyError:
        raise
    except Exception as exc:
        log.error("reference ownership check failed", extra={"error": type(exc).__name__})
        raise ProxyError(500, "Failed to verify references") from None
    if refs.vector_stores:
        raise not_found("Vector store not found")
    if refs.items:
        if conversation is None or not await _all_in_conversation(conversation, refs.items):
            raise not_found("Item not found")


async def _all_in_conversation(conversation_id: str, wanted: set[str]) -> bool:
    """Are all `wanted` item ids in the conversation? Pages through its items upstream."""
    missing = {item for item in wanted if conversations.well_formed(item)}
    if len(missing) != len(wanted):
        return False
    path = f"conversations/{quote(conversation_id, safe='')}/items"
    after: str | None = None
    for _ in range(MAX_ITEM_PAGES):
        params: dict[str, Any] = {"limit": ITEM_PAGE, "order": "asc"}
        if after is not None:
            params["after"] = after
        try:
            response = await get_upstream().call("GET", path, query=urlencode(params).encode())
        except UpstreamError as exc:
            raise ProxyError(exc.status, f"Failed to verify items: {exc.message}") from None
        if response.status_code != 200:
            raise ProxyError(
                502, f"Failed to verify items: upstream returned status {response.status_code}"
            )
        try:
            page = json.loads(response.content)
            data = page["data"]
            ids = [item["id"] for item in data if isinstance(item, dict) and "id" in item]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            raise ProxyError(502, "Failed to verify items: unexpected upstream answer") from None
        missing.difference_update(ids)
        if not missing:
            return True
        if not page.get("has_more") or not ids or not isinstance(ids[-1], str):
            return False
        after = ids[-1]
    log.warning("item lookup stopped at the page limit", extra={"pages": MAX_ITEM_PAGES})
    return False
