"""Acceptance: the official openai SDK pointed straight at the fake works."""

from __future__ import annotations

import functools

import openai
import pytest
import trio
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseOutputItemAddedEvent,
    ResponseTextDeltaEvent,
)

from tests.fakecloud_fixtures import API_KEY, start_fake_cloud


@pytest.fixture
async def fake_cloud(nursery):
    return await start_fake_cloud(nursery)


def _sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=10)


def _conversation_flow(base_url: str) -> dict:
    client = _sdk(base_url)
    conv = client.conversations.create(metadata={"topic": "sdk"})
    stream = client.responses.create(
        model="privchat-dev/echo", input="Hello from the SDK", conversation=conv.id, stream=True
    )
    events = list(stream)
    plain = client.responses.create(model="privchat-dev/echo", input="again", conversation=conv.id)
    items = client.conversations.items.list(conv.id, limit=10)
    uploaded = client.files.create(
        file=("notes.md", b"# notes\n", "text/markdown"), purpose="user_data"
    )
    content = client.files.content(uploaded.id)
    return {
        "conv": conv,
        "events": events,
        "plain": plain,
        "items": list(items),
        "uploaded": uploaded,
        "content": content.read(),
    }


async def test_openai_sdk_against_fake(fake_cloud) -> None:
    fake, base_url = fake_cloud
    out = await trio.to_thread.run_sync(functools.partial(_conversation_flow, base_url))
    assert out["conv"].id.startswith("conv_") and out["conv"].metadata == {"topic": "sdk"}
    events = out["events"]
    assert isinstance(events[0], ResponseCreatedEvent)
    assert any(isinstance(e, ResponseOutputItemAddedEvent) for e in events)
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert len(deltas) == fake.knobs.deltas
    completed = [e for e in events if isinstance(e, ResponseCompletedEvent)]
    assert len(completed) == 1
    assert completed[0].response.output_text == "".join(d.delta for d in deltas)
    assert "not an LLM" in completed[0].response.output_text
    title = [e for e in events if getattr(e, "type", None) == "conversation.title.updated"]
    assert len(title) == 1  # NEAR extension, parsed leniently by the SDK
    assert isinstance(out["plain"], Response) and out["plain"].status == "completed"
    assert "again" in out["plain"].output_text
    roles = [item.role for item in out["items"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert out["uploaded"].filename == "notes.md" and out["uploaded"].bytes == 8
    assert out["content"] == b"# notes\n"
    streamed = [r for r in fake.requests if r.path == "/v1/responses"]
    assert streamed[0].header("authorization") == f"Bearer {API_KEY}".encode()


def _failed_stream(base_url: str) -> list:
    client = _sdk(base_url)
    return list(
        client.responses.create(
            model="privchat-dev/echo",
            input="x",
            stream=True,
            extra_headers={"x-fake-fail": "failed_after_partial", "x-fake-deltas": "4"},
        )
    )


async def test_openai_sdk_sees_in_band_failure_as_api_error(fake_cloud) -> None:
    _, base_url = fake_cloud
    with pytest.raises(openai.APIError, match="Provider stream error"):
        await trio.to_thread.run_sync(functools.partial(_failed_stream, base_url))


def _bad_key(base_url: str) -> None:
    openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0).conversations.create()


async def test_openai_sdk_wrong_key(fake_cloud) -> None:
    _, base_url = fake_cloud
    with pytest.raises(openai.AuthenticationError) as info:
        await trio.to_thread.run_sync(functools.partial(_bad_key, base_url))
    assert info.value.status_code == 401
