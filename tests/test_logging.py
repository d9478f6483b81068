"""Process logging: records are formatted and written by a writer thread, so a blocked log sink
never stalls the event loop, and what is queued is written out when logging stops."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
import trio

from privchat.config import Config, load_config
from privchat.observability import setup_logging, stop_logging

from .conftest import start_server


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    stop_logging()
    root.handlers[:] = handlers
    root.setLevel(level)


class BlockedSink(io.StringIO):
    """A stream whose writes wait until the test opens it, like a full pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()

    def write(self, text: str) -> int:
        assert self.open.wait(10), "the sink was never opened"
        return super().write(text)


def test_a_blocked_sink_does_not_block_the_caller(restore_root: None) -> None:
    sink = BlockedSink()
    setup_logging(load_config({}), stream=sink)
    log = logging.getLogger("privchat.test")
    for i in range(3):
        log.info("request served", extra={"user_id": f"u{i}", "token": "sess_secret"})
    assert sink.getvalue() == ""  # nothing could be written, and the calls returned anyway
    sink.open.set()
    stop_logging()  # writes out what is queued
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [line["fields"]["user_id"] for line in lines] == ["u0", "u1", "u2"]
    assert all("token" not in line["fields"] for line in lines)
    assert "sess_secret" not in sink.getvalue()


def test_errors_keep_their_type_when_written_later(restore_root: None) -> None:
    sink = io.StringIO()
    setup_logging(load_config({"LOG_FORMAT": "text"}), stream=sink)
    try:
        raise ZeroDivisionError
    except ZeroDivisionError:
        logging.getLogger("privchat.test").exception("failed")
    stop_logging()
    assert "ERROR privchat.test: failed" in sink.getvalue()
    assert "error=ZeroDivisionError" in sink.getvalue()


FORGED = (b"/v1/x%0a12:00:00%20INFO%20forged%20line", b"/v1/esc%1b[31mred", b"/v1/nul%00x")


async def _requests_with_control_characters(url: str) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    for target in (*FORGED, b"/v1/raw\x1b[31mesc"):  # the last one h11 refuses
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            await stream.send_all(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            with trio.fail_after(10):
                head = await stream.receive_some(65536)
            assert head == b"" or head.startswith(b"HTTP/1.1 4"), head[:40]


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_access_lines_escape_request_text(
    restore_root: None, nursery: trio.Nursery, config: Config, log_format: str
) -> None:
    """Issue 14, finding 9: a path with %0a or ESC/NUL wrote forged lines and raw control
    characters, and access lines stayed plain text with LOG_FORMAT=json."""
    sink = io.StringIO()
    cfg = replace(config, log_format=log_format, access_log=True)
    setup_logging(cfg, stream=sink)
    running = await start_server(nursery, cfg)
    await _requests_with_control_characters(running.url)
    stop_logging()
    text = sink.getvalue()
    lines = text.splitlines()
    assert not any(ch in text for ch in "\x00\x1b\r"), "raw control characters in the log"
    assert not any("forged line" in line and "/v1/x" not in line for line in lines)
    access = [line for line in lines if '"GET /v1/' in line or "GET /v1/" in line]
    assert len(access) >= len(FORGED), lines
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # every line, access lines included
        messages = [r["fields"]["message"] for r in records if r["target"] == "hypercorn.access"]
        assert any("/v1/x\n12:00:00 INFO forged line" in m for m in messages), messages
        assert any("/v1/esc\x1b[31mred" in m for m in messages)
    else:
        assert any("/v1/x\\n12:00:00 INFO forged line" in line for line in lines), lines
        assert any("/v1/nul\\x00x" in line for line in lines)
