"""The ``/v1/responses`` event catalogue (spec §2.3-§2.5): response objects and scripted event
sequences. Pure: everything random or time-based is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .echo import split_text
from .knobs import Knobs

DEFAULT_TOOLS = [
    {
        "type": "web_search",
        "search_context_size": "medium",
        "user_location": {"type": "approximate", "country": "US"},
    }
]


def usage(input_tokens: int, output_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


@dataclass
class Turn:
    """Everything about one response that is fixed before streaming starts."""

    request: dict[str, Any]
    response_id: str
    message_id: str
    reasoning_id: str
    created_at: int
    reply: str
    input_tokens: int
    conversation_id: str | None = None
    title: str | None = None  # emitted when set (placement decided by knobs.title)
    parent_id: str | None = None  # structural parent shown on stored items


def response_object(
    turn: Turn, status: str, output: list[dict[str, Any]], use: dict[str, Any]
) -> dict[str, Any]:
    req = turn.request
    obj: dict[str, Any] = {
        "id": turn.response_id,
        "object": "response",
        "created_at": turn.created_at,
        "status": status,
        "background": bool(req.get("background", False)),
    }
    if turn.conversation_id:
        obj["conversation"] = {"id": turn.conversation_id}
    for key in ("instructions", "max_output_tokens"):
        if req.get(key) is not None:
            obj[key] = req[key]
    obj["max_tool_calls"] = req.get("max_tool_calls") or 10
    obj["model"] = req["model"]
    obj["output"] = output
    obj["parallel_tool_calls"] = bool(req.get("parallel_tool_calls", False))
    if req.get("previous_response_id"):
        obj["previous_response_id"] = req["previous_response_id"]
    obj["next_response_ids"] = []
    for key in ("prompt_cache_key", "prompt_cache_retention", "reasoning", "safety_identifier"):
        if req.get(key) is not None:
            obj[key] = req[key]
    obj["service_tier"] = "default"
    obj["store"] = bool(req.get("store", True))
    obj["temperature"] = float(req.get("temperature", 1.0))
    obj["tool_choice"] = req.get("tool_choice") or "auto"
    obj["tools"] = req.get("tools") or DEFAULT_TOOLS
    obj["top_logprobs"] = 0
    obj["top_p"] = float(req.get("top_p", 1.0))
    obj["truncation"] = "disabled"
    obj["usage"] = use
    if req.get("user") is not None:
        obj["user"] = req["user"]
    obj["metadata"] = req.get("metadata") or {}
    return obj


def message_item(
    turn: Turn, status: str, text: str | None, *, stored: bool = False
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "id": turn.message_id,
        "response_id": turn.response_id,
    }
    parent = turn.request.get("previous_response_id") or (turn.parent_id if stored else None)
    if parent:
        item["previous_response_id"] = parent
    item.update(
        {
            "next_response_ids": [],
            "created_at": turn.created_at,
            "status": status,
            "role": "assistant",
            "content": [] if text is None else [output_text_part(text)],
            "model": turn.request["model"],
        }
    )
    return item


def output_text_part(text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def reasoning_item(turn: Turn, status: str, content: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": turn.reasoning_id,
        "response_id": turn.response_id,
        "next_response_ids": [],
        "created_at": turn.created_at,
        "status": status,
        "summary": "",
        "content": content,
        "model": turn.request["model"],
    }


def failed_event(
    message: str, error_type: str, status_code: int, use: dict[str, Any] | None, profile: str
) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.failed", "text": message}
    if profile == "jan-2026":
        return event
    event["error"] = {"message": message, "type": error_type}
    event["status_code"] = status_code
    if use is not None:
        event["usage"] = use
    return event


def title_event(title: str) -> dict[str, Any]:
    return {"type": "conversation.title.updated", "conversation_title": title}


@dataclass
class Script:
    """The events of one response, in order.

    ``events`` ends with ``response.completed`` (or ``response.failed``); ``late`` holds events
    sent after it (a late title). ``drop_at`` is the index of the event cut in half by the
    ``drop`` failure mode (None otherwise).
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None
    drop_at: int | None = None
    text: str = ""


class _Seq:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        numbered = {"type": event["type"], "sequence_number": self.value}
        numbered.update((k, v) for k, v in event.items() if k != "type")
        self.value += 1
        return numbered


def build_script(turn: Turn, knobs: Knobs) -> Script:
    """The scripted event sequence for ``turn`` under ``knobs``."""
    script = Script()
    message = knobs.fail_message
    if knobs.fail == "failed_only":
        status = knobs.fail_status or 500
        script.failed = failed_event(
            message or "Internal server error", _error_type(status), status, None, knobs.profile
        )
        script.events.append(script.failed)
        return script

    seq = _Seq()
    events = script.events
    zero = usage(0, 0)
    start = response_object(turn, "in_progress", [], zero)
    events.append(seq({"type": "response.created", "response": start}))
    events.append(seq({"type": "response.in_progress", "response": start}))
    if knobs.title == "before" or (knobs.title == "auto" and turn.title):
        events.append(title_event(turn.title or "Conversation"))

    output_index = 0
    stored: list[dict[str, Any]] = []
    reasoning_tokens = 0
    if knobs.reasoning:
        thought = "The user wants their words echoed back; no tools needed."
        rs = turn.reasoning_id
        events.append(
            seq(
                {
                    "type": "response.output_item.added",
                    "output_index": output_index,
                    "item": reasoning_item(turn, "in_progress", ""),
                    "item_id": rs,
                }
            )
        )
        for piece in split_text(thought, 3):
            events.append(
                seq(
                    {
                        "type": "response.reasoning.delta",
                        "output_index": output_index,
                        "item_id": rs,
                        "delta": piece,
                    }
                )
            )
        done_item = reasoning_item(turn, "completed", thought)
        events.append(
            seq(
                {
                    "type": "response.output_item.done",
                    "output_index": output_index,
                    "item": done_item,
                    "item_id": rs,
                }
            )
        )
        stored.append(done_item)
        reasoning_tokens = 3
        output_index += 1

    mid = turn.message_id
    common = {"output_index": output_index, "content_index": 0, "item_id": mid}
    events.append(
        seq(
            {
                "type": "response.output_item.added",
                "output_index": output_index,
                "item": message_item(turn, "in_progress", None),
                "item_id": mid,
            }
        )
    )
    events.append(
        seq({"type": "response.content_part.added", **common, "part": output_text_part("")})
    )
    pieces = split_text(turn.reply, knobs.deltas)
    partial = knobs.fail == "failed_after_partial"
    cut = knobs.fail_after if knobs.fail_after is not None else len(pieces) // 2
    cut = max(0, min(cut, len(pieces)))
    sent: list[str] = []
    annotations: list[dict[str, Any]] = []
    for index, piece in enumerate(pieces):
        if partial and index >= cut:
            break
        if knobs.fail == "drop" and index == cut:
            script.drop_at = len(events)
        events.append(
            seq({"type": "response.output_text.delta", **common, "delta": piece, "logprobs": []})
        )
        sent.append(piece)
        if knobs.citation and index == 0:
            annotation = {
                "type": "url_citation",
                "start_index": 0,
                "end_index": len(piece),
                "title": "privchat development citation",
                "url": "https://example.invalid/privchat-dev",
            }
            annotations.append(annotation)
            events.append(
                seq(
                    {
                        "type": "response.output_text.annotation.added",
                        **common,
                        "annotation_index": 0,
                        "annotation": annotation,
                    }
                )
            )
    text = "".join(sent)
    script.text = text
    events.append(
        seq({"type": "response.output_text.done", **common, "text": text, "logprobs": []})
    )
    part = output_text_part(text, annotations)
    events.append(seq({"type": "response.content_part.done", **common, "part": part}))
    item = message_item(turn, "completed", None)
    item["content"] = [part]
    events.append(
        seq(
            {
                "type": "response.output_item.done",
                "output_index": output_index,
                "item": item,
                "item_id": mid,
            }
        )
    )
    final_usage = usage(turn.input_tokens, len(sent) + reasoning_tokens, reasoning_tokens)
    if partial:
        status = knobs.fail_status or 500
        script.failed = failed_event(
            message or "Provider stream error", "stream_error", status, final_usage, knobs.profile
        )
        events.append(script.failed)
        return script

    stored_item = message_item(turn, "completed", None, stored=True)
    stored_item["content"] = [part]
    stored.append(stored_item)
    final = response_object(turn, "completed", stored, final_usage)
    completed: dict[str, Any] = {"type": "response.completed", "response": final}
    if knobs.profile != "jan-2026":
        completed["usage"] = final_usage
    events.append(seq(completed))
    script.final = final
    if knobs.title == "after":
        script.late.append(title_event(turn.title or "Conversation"))
    return script


def _error_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        404: "not_found",
        502: "mcp_error",
    }.get(status, "internal_server_error")
