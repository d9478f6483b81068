"""Helpers for tests of the fake NEAR AI Cloud (import the fixtures into a test module)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud

API_KEY = "sk-test"
AUTH = {"authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def fake_cloud(nursery) -> tuple[FakeCloud, str]:
    fake = FakeCloud(api_key=API_KEY)
    base_url = await nursery.start(serve_fake_cloud, fake)
    return fake, base_url


@pytest.fixture
async def client(fake_cloud) -> httpx2.AsyncClient:
    _, base_url = fake_cloud
    async with httpx2.AsyncClient(base_url=base_url, headers=AUTH, timeout=10) as c:
        yield c


def parse_sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Strict parser for the upstream framing: ``event: X\\ndata: {json}\\n\\n`` only."""
    events = []
    text = data.decode("utf-8")
    assert text.endswith("\n\n") or not text
    for block in text.split("\n\n")[:-1]:
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        payload = json.loads(data_line[len("data: ") :])
        assert payload["type"] == event_line[len("event: ") :]
        events.append((payload["type"], payload))
    return events


def stream_body(model: str = "privchat-dev/echo", text: str = "Say hello", **extra: Any) -> bytes:
    body = {
        "model": model,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}],
        "stream": True,
    }
    body.update(extra)
    return json.dumps(body).encode()


JSON = {"content-type": "application/json"}
