"""Helpers for tests of the fake NEAR AI Cloud."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import trio

from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud

API_KEY = "sk-test"
AUTH = {"authorization": f"Bearer {API_KEY}"}


async def start_fake_cloud(nursery: trio.Nursery) -> tuple[FakeCloud, str]:
    """Serve a fresh FakeCloud in ``nursery``; returns (fake, base_url ending in /v1)."""
    fake = FakeCloud(api_key=API_KEY)
    base_url = await nursery.start(serve_fake_cloud, fake)
    return fake, base_url


def cloud_client_for(base_url: str) -> httpx2.AsyncClient:
    """An httpx2 client authenticated with the fake's key (use with ``async with``)."""
    return httpx2.AsyncClient(base_url=base_url, headers=AUTH, timeout=10)


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
