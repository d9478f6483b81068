"""`privchat.tracking.inspect`: which upstream answers count, read from a decoded copy (D4)."""

from __future__ import annotations

import gzip
import json

import brotli
import pytest
import zstandard

from privchat.tracking import inspect

OBJ = {"id": "conv_0123", "object": "conversation", "created_at": 1, "metadata": {}}
RAW = json.dumps(OBJ).encode()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        (None, RAW),
        ("gzip", gzip.compress(RAW)),
        ("br", brotli.compress(RAW)),
        ("zstd", zstandard.ZstdCompressor().compress(RAW)),
        ("gzip, br", brotli.compress(gzip.compress(RAW))),
    ],
)
def test_every_encoding_is_inspected(encoding: str | None, body: bytes) -> None:
    headers = [("content-type", "application/json")]
    if encoding:
        headers.append(("content-encoding", encoding))
    assert inspect(201, headers, body) == OBJ


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, RAW),  # not 2xx
        (201, b"not json"),
        (201, b"[1, 2]"),
        (201, json.dumps({"id": 5}).encode()),
        (201, json.dumps({"object": "conversation"}).encode()),
    ],
)
def test_untrackable_answers(status: int, body: bytes) -> None:
    assert inspect(status, [], body) is None


def test_corrupt_encoding_is_not_tracked() -> None:
    assert inspect(201, [("content-encoding", "gzip")], b"\x1f\x8bgarbage") is None
