"""Process logging: records are formatted and written by a writer thread, so a blocked log sink
never stalls the event loop, and what is queued is written out when logging stops."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from privchat.config import load_config
from privchat.observability import setup_logging, stop_logging


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
