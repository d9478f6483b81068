"""Scenarios 6 and 9 of api.md §6: conversations used by /v1/responses show up in the list."""

from __future__ import annotations

import httpx2
import trio

from privchat.devtools.fake_cloud import ECHO_MODEL
from tests.convfiles_env import Env, env_fixture  # noqa: F401


def _turn(conversation_id: str, text: str) -> dict[str, object]:
    return {
        "conversation": conversation_id,
        "model": ECHO_MODEL,
        "input": [{"type": "message", "role": "user", "content": text}],
    }


async def _respond(env: Env, headers: dict[str, str], body: dict[str, object]) -> httpx2.Response:
    """POST /v1/responses as a well-behaved client: a 429 is retried after its Retry-After."""
    while True:
        response = await env.client.post("/v1/responses", json=body, headers=headers)
        if response.status_code != 429:
            return response
        await trio.sleep(response.json().get("retry_after_ms", 1000) / 1000)


async def test_scenario_6_two_turns_then_listed(env: Env) -> None:
    _, headers, me = await env.user()
    response = await env.client.post(
        "/v1/conversations", json={"metadata": {"test": "e2e"}}, headers=headers
    )
    assert response.status_code == 201
    conversation_id = response.json()["id"]
    for text in ("first turn", "second turn"):
        response = await _respond(env, headers, _turn(conversation_id, text))
        assert 200 <= response.status_code < 300, response.text
        assert isinstance(response.json()["id"], str)
    listed = (await env.client.get("/v1/conversations", headers=headers)).json()
    (entry,) = [c for c in listed if c["id"] == conversation_id]
    assert entry["metadata"]["test"] == "e2e" and isinstance(entry["created_at"], int)
    assert await env.owner(conversation_id) == me


async def test_scenario_9_response_keeps_the_conversation_listed(env: Env) -> None:
    _, headers, _ = await env.user()
    older = (await env.client.post("/v1/conversations", json={}, headers=headers)).json()["id"]
    newer = (await env.client.post("/v1/conversations", json={}, headers=headers)).json()["id"]
    response = await _respond(env, headers, _turn(older, "hello"))
    assert 200 <= response.status_code < 300, response.text
    listed = [c["id"] for c in (await env.client.get("/v1/conversations", headers=headers)).json()]
    # The response tracked (touched) the conversation: it is listed, now first.
    assert listed == [older, newer]
