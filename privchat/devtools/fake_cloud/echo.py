"""``privchat-dev/echo``: the deterministic local development model. Pure functions."""

from __future__ import annotations

from typing import Any

ECHO_MODEL = "privchat-dev/echo"
PREAMBLE = (
    "Echo \u2713 \u2014 privchat-dev/echo is a local development model, not an LLM. "
    "It repeats your last message"
)


def last_user_text(input_value: Any) -> str:
    """The text of the last user message of a ``/v1/responses`` ``input`` (string or items)."""
    if isinstance(input_value, str):
        return input_value
    text = ""
    if isinstance(input_value, list):
        for item in input_value:
            if isinstance(item, dict) and item.get("role", "user") == "user":
                found = content_text(item.get("content"))
                if found:
                    text = found
    return text


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")
        ]
        return " ".join(t for t in parts if t)
    return ""


def echo_reply(input_value: Any) -> str:
    said = last_user_text(input_value).strip()
    if not said:
        return PREAMBLE + ", but there was no text to repeat."
    return f"{PREAMBLE}: \u201c{said}\u201d"


def split_text(text: str, pieces: int) -> list[str]:
    """Split ``text`` into exactly ``pieces`` non-empty chunks (by character), padding if short."""
    while len(text) < pieces:
        text += " echo"
    size, extra = divmod(len(text), pieces)
    chunks, start = [], 0
    for index in range(pieces):
        end = start + size + (1 if index < extra else 0)
        chunks.append(text[start:end])
        start = end
    return chunks


def make_title(text: str) -> str:
    """Conversation title (≤ 60 chars, truncated with ``...``)."""
    text = " ".join(text.split()) or "New conversation"
    return text if len(text) <= 60 else text[:57] + "..."


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))
