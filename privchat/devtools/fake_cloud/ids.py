"""Identifier formats of the upstream (spec §0.6): minting and parsing.

Minted hex ids are time-ordered (UUIDv7-like) so that sorting items by (created_at, id) keeps
insertion order, as the upstream's storage does.
"""

from __future__ import annotations

import os
import re
import time
import uuid

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _hex32() -> str:
    millis = time.time_ns() // 1_000_000
    raw = millis.to_bytes(6, "big") + os.urandom(10)
    return raw.hex()


def new_id(prefix: str) -> str:
    """``resp_``/``conv_``/``msg_``/``rs_`` + 32 lowercase hex."""
    return prefix + _hex32()


def new_file_id() -> str:
    """``file-`` + hyphenated UUID (36 chars)."""
    return "file-" + str(uuid.UUID(hex=_hex32()))


def parse_prefixed(value: str, prefix: str) -> str | None:
    """Return the 32-hex core of ``<prefix><hex>`` or a bare (hyphenated or not) UUID, else None."""
    if value.startswith(prefix):
        value = value[len(prefix) :]
    try:
        return uuid.UUID(value).hex
    except ValueError:
        return None


def conversation_id(core: str) -> str:
    return "conv_" + core


def file_id(core: str) -> str:
    return "file-" + str(uuid.UUID(hex=core))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def now() -> int:
    return int(time.time())
