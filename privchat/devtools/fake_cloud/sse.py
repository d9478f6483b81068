"""SSE framing of the upstream (spec §2.2) and TCP write patterns. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def dumps(obj: Any) -> bytes:
    """Compact JSON as the upstream (serde_json) writes it: no spaces, raw UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def frame(event: dict[str, Any]) -> bytes:
    """``event: <type>\\ndata: <compact json>\\n\\n``; the event name equals ``type``."""
    return b"event: " + event["type"].encode("utf-8") + b"\ndata: " + dumps(event) + b"\n\n"


def split_frame(data: bytes) -> list[bytes]:
    """Split one frame into pieces: mid ``event:`` line, mid ``data:`` line, and inside a
    multi-byte UTF-8 character when the frame has one. Joining the pieces gives ``data``."""
    cuts = {4}  # inside "event: "
    newline = data.find(b"\n")
    if newline > 0:
        cuts.add(newline + 10)  # inside the data line
    for index, byte in enumerate(data):
        if byte >= 0xC0:  # lead byte of a multi-byte character: cut right after it
            cuts.add(index + 1)
            break
    ordered = sorted(c for c in cuts if 0 < c < len(data))
    pieces, start = [], 0
    for cut in ordered:
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces


def writes(frames: Sequence[bytes], mode: str, coalesce: int = 3) -> list[list[bytes]]:
    """Group frames into writes. Returns, per write *slot*, the list of byte chunks.

    * ``event``: one frame per write;
    * ``coalesce``: ``coalesce`` consecutive frames joined in one write;
    * ``split``: each frame becomes several writes (see :func:`split_frame`).

    The outer list has one entry per scheduling slot (a delay may precede each slot); the inner
    list holds the separate writes within the slot.
    """
    if mode == "coalesce":
        return [[b"".join(frames[i : i + coalesce])] for i in range(0, len(frames), coalesce)]
    if mode == "split":
        return [split_frame(f) for f in frames]
    return [[f] for f in frames]
