"""Issue 14 finding 3: every id a request names belongs to the caller (docs/ownership.md).

Two real users (mock-login), the real fake cloud: user B names user A's response, items and
files, and gets the same 404 as for an id nobody has, before anything reaches the upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx2
import pytest
import trio

from privchat.config import Config
from privchat.ratelimit import RateLimiter
from privchat.runtime import Running, serve
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


# The owner row of a response id is written beside the stream (services/response_owners.py).
# These tests hold every INSERT into `response_owners` behind a table lock (plain SELECTs pass
# it), so the write is provably still pending while they act.


@asynccontextmanager
async def _owner_writes_held(env: Env) -> AsyncIterator[trio.Event]:
    """Inserts into `response_owners` block until the yielded event is set."""
    release = trio.Event()
    locked = trio.Event()

    async def hold() -> None:
        async with env.db.transaction() as conn:
            await conn.execute("LOCK TABLE response_owners IN EXCLUSIVE MODE")
            locked.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold)
        await locked.wait()
        try:
            yield release
        finally:
            release.set()


async def _first_event(stream: httpx2.Response) -> dict[str, Any]:
    """The first SSE event's JSON, read while the stream stays open."""
    buffered = b""
    async for chunk in stream.aiter_raw():
        buffered += chunk
        if b"\n\n" in buffered:
            break
    data = next(line for line in buffered.split(b"\n") if line.startswith(b"data: "))
    return json.loads(data[len(b"data: ") :])  # type: ignore[no-any-return]


HELD_STREAM = {"x-fake-delay-ms": "60000"}  # the stream stays open after its first event


async def test_the_owner_can_use_an_id_while_its_row_is_still_being_written(env: Env) -> None:
    _, alice, alice_id = await env.user()
    _, bob, _ = await env.user()
    owners = env.server.services.response_owners
    assert owners is not None
    with trio.fail_after(30):
        async with (
            _owner_writes_held(env) as release,
            env.client.stream(
                "POST", "/v1/responses", json=_request(), headers={**alice, **HELD_STREAM}
            ) as stream,
        ):
            assert stream.status_code == 200
            # The first event arrives although its owner row cannot be written yet.
            response_id = (await _first_event(stream))["response"]["id"]
            assert owners.pending == 1
            assert not await env.db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM response_owners WHERE id = $1)", response_id
            )
            # Another user is refused at once, without waiting for the write.
            signatures = len(env.upstream_requests("/v1/signature/"))
            theirs = await env.client.get(f"/v1/signature/{response_id}", headers=bob)
            assert theirs.status_code == 404
            follow = _request(previous_response_id=response_id)
            await _not_forwarded(env, bob, follow, "Response not found")
            assert len(env.upstream_requests("/v1/signature/")) == signatures
            assert owners.pending == 1

            # The owner's follow-ups, made while the write is pending, wait for it.
            answers: dict[str, httpx2.Response] = {}

            async def ask_signature() -> None:
                answers["signature"] = await env.client.get(
                    f"/v1/signature/{response_id}", headers=alice
                )

            async def continue_thread() -> None:
                answers["follow"] = await env.client.post(
                    "/v1/responses", json=follow, headers=alice
                )

            responses_before = _upstream_responses(env)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask_signature)
                nursery.start_soon(continue_thread)
                await owners.wait_waiters(response_id, 2)
                assert owners.pending == 1  # both are waiting for the held write
                release.set()
            # Both were accepted: asked upstream, not refused by privchat.
            assert len(env.upstream_requests("/v1/signature/")) == signatures + 1
            assert _upstream_responses(env) == responses_before + 1
            # (the upstream answers for itself: its response is not finished yet)
            assert answers["follow"].status_code == 200
    assert (
        await env.db.fetchval("SELECT user_id FROM response_owners WHERE id = $1", response_id)
        == alice_id
    )


async def test_owner_row_is_written_when_the_client_leaves_after_the_first_event(
    env: Env,
) -> None:
    _, alice, alice_id = await env.user()
    _, bob, _ = await env.user()
    owners = env.server.services.response_owners
    assert owners is not None
    with trio.fail_after(30):
        async with _owner_writes_held(env) as release:
            async with env.client.stream(
                "POST", "/v1/responses", json=_request(), headers={**alice, **HELD_STREAM}
            ) as stream:
                response_id = (await _first_event(stream))["response"]["id"]
            # The client is gone; privchat has dropped the upstream stream (its request ended).
            record = env.fake.stream_for(response_id)
            assert record is not None
            await record.disconnect_event.wait()
            assert owners.pending == 1  # the write outlived the request
            release.set()
        await owners.wait_idle()
    assert (
        await env.db.fetchval("SELECT user_id FROM response_owners WHERE id = $1", response_id)
        == alice_id
    )
    await env.client.get(f"/v1/signature/{response_id}", headers=alice)
    assert len(env.upstream_requests("/v1/signature/")) == 1  # the owner's is asked upstream
    await _not_forwarded(env, bob, _request(previous_response_id=response_id), "Response not found")


async def test_shutdown_writes_the_owner_rows_still_pending(env: Env, config: Config) -> None:
    """A second privchat on the same database is stopped while an owner row of its is held:
    it returns only after writing it (before its pool closes)."""
    _, alice, alice_id = await env.user()
    shutdown = trio.Event()
    stopped = trio.Event()
    second_config = replace(
        config,
        openai_base_url=env.base_url,
        openai_api_key=API_KEY,
        shutdown_drain_seconds=0,
    )

    async def run_second(task_status: trio.TaskStatus[Running]) -> None:
        await serve(second_config, shutdown=shutdown, handle_signals=False, task_status=task_status)
        stopped.set()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            second: Running = await nursery.start(run_second)
            owners = second.services.response_owners
            assert owners is not None
            async with (
                _owner_writes_held(env) as release,
                httpx2.AsyncClient(base_url=second.url, timeout=30) as client,
            ):
                async with client.stream(
                    "POST", "/v1/responses", json=_request(), headers={**alice, **HELD_STREAM}
                ) as stream:
                    response_id = (await _first_event(stream))["response"]["id"]
                assert owners.pending == 1
                shutdown.set()
                await owners.closing.wait()  # the server is stopping: requests are over
                assert owners.pending == 1
                release.set()
            await stopped.wait()
    assert (
        await env.db.fetchval("SELECT user_id FROM response_owners WHERE id = $1", response_id)
        == alice_id
    )
