"""Issue 14 finding 3: every id a request names belongs to the caller (docs/ownership.md).

Two real users (mock-login), the real fake cloud: user B names user A's response, items and
files, and gets the same 404 as for an id nobody has, before anything reaches the upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import trio

from privchat.config import Config
from privchat.ratelimit import RateLimiter
from tests.convfiles_env import API_KEY, Env, open_env, upload
from tests.fakecloud_fixtures import parse_sse

MODEL = "privchat-dev/echo"


@pytest.fixture(name="env")
async def env_fixture(nursery: trio.Nursery, config: Config) -> AsyncIterator[Env]:
    """The conversation/file environment, with the rate limiter's window passing between any
    two requests (its 1 per second would otherwise pace these tests, not test anything)."""
    fake, base_url, running = await open_env(nursery, config)
    ticks = iter(range(0, 10**9, 10))
    running.services.ratelimit = RateLimiter(clock=lambda: float(next(ticks)))
    async with httpx2.AsyncClient(base_url=running.url, timeout=60) as client:
        yield Env(fake, base_url, running, client)


def _request(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": text, "stream": True, **extra}


async def _respond(env: Env, headers: dict[str, str], **extra: Any) -> str:
    """A response of the caller's, streamed; returns its id (from the first event)."""
    response = await env.client.post("/v1/responses", json=_request(**extra), headers=headers)
    assert response.status_code == 200, response.text
    return str(parse_sse(response.content)[0][1]["response"]["id"])


def _upstream_responses(env: Env) -> int:
    return len([r for r in env.fake.requests if r.path.endswith("/v1/responses")])


async def _not_forwarded(
    env: Env, headers: dict[str, str], body: dict[str, Any], message: str
) -> None:
    before = _upstream_responses(env)
    response = await env.client.post("/v1/responses", json=body, headers=headers)
    assert response.status_code == 404, response.text
    assert response.json() == {"error": message}
    assert _upstream_responses(env) == before  # nothing went upstream


async def test_signature_of_another_users_response_is_the_unknown_404(env: Env) -> None:
    _, alice, _ = await env.user()
    _, bob, _ = await env.user()
    response_id = await _respond(env, alice)
    mine = await env.client.get(f"/v1/signature/{response_id}", headers=alice)
    assert mine.status_code == 200 and mine.json()["signing_algo"] == "ecdsa"

    asked = len(env.upstream_requests("/v1/signature/"))
    theirs = await env.client.get(f"/v1/signature/{response_id}", headers=bob)
    assert theirs.status_code == 404
    assert theirs.json() == {
        "error": {
            "message": f"Signature not found: {response_id}:ecdsa",
            "type": "not_found_error",
            "param": None,
            "code": None,
        }
    }
    ed = await env.client.get(f"/v1/signature/{response_id}?signing_algo=ed25519", headers=bob)
    assert ed.status_code == 404 and ed.json()["error"]["message"].endswith(":ed25519")
    assert len(env.upstream_requests("/v1/signature/")) == asked  # never asked upstream
    # An id nobody has gets the same answer, word for word, as the upstream would give.
    unknown = "resp_0123456789abcdef"
    ours = await env.client.get(f"/v1/signature/{unknown}", headers=bob)
    async with httpx2.AsyncClient(base_url=env.base_url) as upstream:
        direct = await upstream.get(
            f"/signature/{unknown}", headers={"authorization": f"Bearer {API_KEY}"}
        )
    assert ours.status_code == direct.status_code == 404
    assert ours.json() == direct.json()


async def test_previous_response_id_of_another_user_is_404_before_upstream(env: Env) -> None:
    _, alice, _ = await env.user()
    _, bob, _ = await env.user()
    response_id = await _respond(env, alice)
    body = _request(previous_response_id=response_id)
    await _not_forwarded(env, bob, body, "Response not found")
    for other in ("resp_unknown", "", 7, "x" * 300, "a\tb"):
        await _not_forwarded(env, bob, _request(previous_response_id=other), "Response not found")
    # The owner continues the thread.
    follow = await env.client.post("/v1/responses", json=body, headers=alice)
    assert follow.status_code == 200
    assert parse_sse(follow.content)[0][1]["response"]["previous_response_id"] == response_id


@pytest.mark.parametrize("encoding", ["identity", "gzip", "br"])
async def test_non_streamed_response_is_recorded_from_its_json(env: Env, encoding: str) -> None:
    _, alice, _ = await env.user()
    _, bob, _ = await env.user()
    headers = {**alice, "accept-encoding": encoding}
    response = await env.client.post("/v1/responses", json=_request(stream=False), headers=headers)
    assert response.status_code == 200
    if encoding != "identity":
        assert response.headers["content-encoding"] == encoding  # relayed as received (D4)
    response_id = response.json()["id"]
    follow = _request(previous_response_id=response_id)
    assert (await env.client.post("/v1/responses", json=follow, headers=alice)).status_code == 200
    await _not_forwarded(env, bob, follow, "Response not found")


async def test_file_ids_in_inputs_and_tools_must_be_the_callers(env: Env) -> None:
    _, alice, _ = await env.user()
    _, bob, _ = await env.user()
    uploaded = await upload(env, alice)
    assert uploaded.status_code == 201
    file_id = uploaded.json()["id"]
    own = await upload(env, bob)
    bobs_file = own.json()["id"]

    def with_part(part: dict[str, Any]) -> dict[str, Any]:
        content = [{"type": "input_text", "text": "read this"}, part]
        return _request(input=[{"role": "user", "content": content}])

    cases = [
        with_part({"type": "input_file", "file_id": file_id}),
        with_part({"type": "input_image", "file_id": file_id, "detail": "auto"}),
        with_part({"type": "input_file", "file_id": file_id, "nested": {"file_id": bobs_file}}),
        _request(tools=[{"type": "code_interpreter", "container": {"file_ids": [file_id]}}]),
        with_part({"type": "input_file", "file_id": "file-unknown"}),
        with_part({"type": "input_file", "file_id": ["not", "a", "string"]}),
    ]
    for body in cases:
        await _not_forwarded(env, bob, body, "File not found")
    # The owner's own file ids go through.
    mixed = with_part({"type": "input_file", "file_id": bobs_file})
    response = await env.client.post("/v1/responses", json=mixed, headers=bob)
    assert response.status_code == 200
    sent = [r for r in env.fake.requests if r.path.endswith("/v1/responses")][-1]
    assert bobs_file in sent.body.decode()


async def test_vector_stores_are_never_the_callers(env: Env) -> None:
    _, bob, _ = await env.user()
    body = _request(tools=[{"type": "file_search", "vector_store_ids": ["vs_shared"]}])
    await _not_forwarded(env, bob, body, "Vector store not found")


async def _conversation_with_items(env: Env, headers: dict[str, str]) -> tuple[str, list[str]]:
    created = await env.client.post("/v1/conversations", json={}, headers=headers)
    conversation_id = created.json()["id"]
    items = {"items": [{"type": "message", "role": "user", "content": "secret plan"}]}
    added = await env.client.post(
        f"/v1/conversations/{conversation_id}/items", json=items, headers=headers
    )
    assert added.status_code == 200
    return conversation_id, [item["id"] for item in added.json()["data"]]


async def test_item_references_must_be_in_a_conversation_of_the_callers(env: Env) -> None:
    _, alice, _ = await env.user()
    _, bob, _ = await env.user()
    alice_conversation, alice_items = await _conversation_with_items(env, alice)
    bob_conversation, bob_items = await _conversation_with_items(env, bob)

    def referring(item_id: Any, conversation: str | None) -> dict[str, Any]:
        body = _request(input=[{"type": "item_reference", "id": item_id}])
        if conversation is not None:
            body["conversation"] = conversation
        return body

    # Alice's item, named from Bob's own conversation, from no conversation, or unknown.
    for body in (
        referring(alice_items[0], bob_conversation),
        referring(alice_items[0], None),
        referring(bob_items[0], None),  # nothing to look it up in
        referring("msg_unknown", bob_conversation),
        referring(12, bob_conversation),
    ):
        await _not_forwarded(env, bob, body, "Item not found")
    # Alice's conversation itself stays Alice's (D5).
    await _not_forwarded(
        env, bob, referring(alice_items[0], alice_conversation), "Conversation not found"
    )
    # Bob's own item in Bob's own conversation is forwarded.
    before = _upstream_responses(env)
    ok = await env.client.post(
        "/v1/responses", json=referring(bob_items[0], bob_conversation), headers=bob
    )
    assert ok.status_code == 200
    assert _upstream_responses(env) == before + 1


async def test_items_list_cursor_of_another_conversation_shows_nothing_of_it(env: Env) -> None:
    """`after` is forwarded (D1), and the upstream only accepts a cursor from the same
    conversation, which the caller owns: a foreign cursor cannot reveal foreign items."""
    _, alice, _ = await env.user()
    _, bob, _ = await env.user()
    _, alice_items = await _conversation_with_items(env, alice)
    bob_conversation, _ = await _conversation_with_items(env, bob)
    response = await env.client.get(
        f"/v1/conversations/{bob_conversation}/items?after={alice_items[0]}", headers=bob
    )
    assert response.status_code == 400
    assert "secret plan" not in response.text


async def test_a_response_id_never_changes_owner(env: Env) -> None:
    from privchat.store import responses

    _, _, alice_id = await env.user()
    _, _, bob_id = await env.user()
    assert await responses.record(env.db, "resp_same", alice_id)
    assert not await responses.record(env.db, "resp_same", bob_id)
    assert await responses.record(env.db, "resp_same", alice_id)  # idempotent for the owner
    assert await responses.owns(env.db, "resp_same", alice_id)
    assert not await responses.owns(env.db, "resp_same", bob_id)
