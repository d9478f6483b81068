"""The id of a relayed Responses API answer, read from its first bytes (docs/ownership.md).

`ResponseIdWatch` is fed the raw chunks that `relay()` passes to the client. It decodes them
(D4 codings, incrementally), keeps at most `MAX_PREFIX` decoded bytes, and as soon as the id is
known calls `on_id(id)` - awaited before the chunk that carries it goes to the client, so the
client can never name an id that is not registered yet. `/v1/responses` only registers it there
(its owner row is written beside the stream, `services.response_owners`), so the first event
does not wait for a database round trip. After that (or once it gives up) `relay()`
drops the watch and the rest of the stream is pure pass-through.

- an event stream: the first `data:` line whose JSON has `response.id` (the reference's first
  event is `response.created`; a stream that fails at once sends `response.failed`, also with it);
- a JSON answer (`stream` false): the top-level `"id"` when it is the first key (the upstream's
  struct order), else the parsed whole body at its end, if it fits in `MAX_PREFIX`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from . import decode

log = logging.getLogger(__name__)

MAX_PREFIX = 1024 * 1024
_LEADING_ID = re.compile(rb'\A\s*\{\s*"id"\s*:\s*"([^"\\]{1,255})"')

OnId = Callable[[str], Awaitable[None]]


class ResponseIdWatch:
    def __init__(self, content_type: str, content_encoding: str | None, on_id: OnId) -> None:
        self._sse = content_type.split(";")[0].strip().lower() == "text/event-stream"
        self._decode = decode.incremental(content_encoding)
        self._on_id = on_id
        self._prefix = bytearray()
        self._scanned = 0  # event streams: bytes of `_prefix` already split into lines

    async def feed(self, chunk: bytes) -> bool:
        """Inspect one raw chunk; True when the watch is finished (found or gave up)."""
        if self._decode is None:
            return self._give_up("unsupported content-encoding")
        try:
            self._prefix += self._decode(chunk)
        except Exception as exc:
            return self._give_up(f"undecodable body ({type(exc).__name__})")
        found = self._from_events() if self._sse else self._from_json_head()
        if found is not None:
            await self._on_id(found)
            return True
        if len(self._prefix) > MAX_PREFIX:
            return self._give_up("no id within the first MiB")
        return False

    async def end(self) -> None:
        """The body ended before the id was seen: a JSON answer is parsed whole."""
        if self._sse or self._decode is None or len(self._prefix) > MAX_PREFIX:
            self._give_up("no id in the body")
            return
        try:
            body = json.loads(self._prefix)
        except (ValueError, UnicodeDecodeError):
            body = None
        found = body.get("id") if isinstance(body, dict) else None
        if isinstance(found, str):
            await self._on_id(found)
        else:
            self._give_up("no id in the body")

    def _from_json_head(self) -> str | None:
        match = _LEADING_ID.match(self._prefix)
        return match.group(1).decode("utf-8", "replace") if match else None

    def _from_events(self) -> str | None:
        while True:
            newline = self._prefix.find(b"\n", self._scanned)
            if newline < 0:
                return None
            line = bytes(self._prefix[self._scanned : newline]).rstrip(b"\r")
            self._scanned = newline + 1
            if not line.startswith(b"data:"):
                continue
            try:
                event = json.loads(line[5:])
            except (ValueError, UnicodeDecodeError):
                continue
            response = event.get("response") if isinstance(event, dict) else None
            found = response.get("id") if isinstance(response, dict) else None
            if isinstance(found, str):
                return found

    def _give_up(self, reason: str) -> bool:
        log.warning("response id not recorded", extra={"reason": reason})
        self._prefix = bytearray()
        return True
