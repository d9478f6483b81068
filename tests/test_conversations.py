"""Conversation routes (api.md §2.5) through the real privchat against the fake upstream.

Scenario numbers refer to api.md §6.
"""

from __future__ import annotations

import gzip
import json
import uuid

import brotli
import httpx2
import trio

from privchat.store import conversations
from tests.conftest import auth, login
from tests.convfiles_env import Env, env_fixture, open_env  # noqa: F401  (fixture)

JSON = {"content-type": "application/json"}


async def create(env: Env, headers: dict[str, str], metadata: object = None) -> str:
    body = {"items": []} if metadata is None else {"items": [], "metadata": metadata}
    response = await env.client.post("/v1/conversations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_create_is_tracked_relayed_and_logged(env: Env) -> None:
    _, headers, me = await env.user()
    raw = b'{"metadata": {"title": "private title"},   "items": []}'
    response = await env.client.post(
        "/v1/conversations", content=raw, headers={**headers, **JSON, "x-request-id": "r-1"}
    )
    assert response.status_code == 201
    conversation_id = response.json()["id"]
    assert conversation_id.startswith("conv_")
    # The ownership row exists as soon as the client has the answer.
    assert await env.owner(conversation_id) == me
    (sent,) = env.upstream_requests("/v1/conversations")
    assert sent.body == raw  # forwarded untouched
    assert sent.header("authorization") == b"Bearer sk-test"
    assert sent.header("x-request-id") == b"r-1"
    assert await env.activity(me, "conversation") == [{"conversation_id": conversation_id}]


async def test_scenario_7_get_as_owner(env: Env) -> None:
    _, headers, _ = await env.user()
    conversation_id = await create(env, headers, {"title": "t"})
    response = await env.client.get(f"/v1/conversations/{conversation_id}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == conversation_id and body["metadata"] == {"title": "t"}
    get = env.upstream_requests(f"/v1/conversations/{conversation_id}")[-1]
    assert get.header("x-request-id") is None or get.method == "GET"
    assert get.header("cookie") is None


async def test_scenario_8_list_is_a_bare_array(env: Env) -> None:
    _, headers, _ = await env.user()
    response = await env.client.get("/v1/conversations", headers=headers)
    assert response.status_code == 200
    assert response.json() == []
    assert env.upstream_requests() == []  # nothing to fetch: no upstream call


async def test_list_in_db_order_with_upstream_details(env: Env) -> None:
    _, headers, _ = await env.user()
    first = await create(env, headers, {"title": "a"})
    second = await create(env, headers, {"title": "b"})
    listed = (await env.client.get("/v1/conversations", headers=headers)).json()
    assert [c["id"] for c in listed] == [second, first]  # updated_at DESC
    assert all("created_at" in c and "metadata" in c for c in listed)
    # Updating the older one moves it to the top.
    response = await env.client.post(
        f"/v1/conversations/{first}", json={"metadata": {"title": "a2"}}, headers=headers
    )
    assert response.status_code == 200
    listed = (await env.client.get("/v1/conversations", headers=headers)).json()
    assert [c["id"] for c in listed] == [first, second]
    assert listed[0]["metadata"]["title"] == "a2"
    (batch,) = env.upstream_requests("/v1/conversations/batch")[-1:]
    assert json.loads(batch.body) == {"ids": [first, second]}
    assert batch.header("content-type") == b"application/json"


async def test_update_relays_bytes_and_forwards_body(env: Env) -> None:
    _, headers, me = await env.user()
    conversation_id = await create(env, headers)
    raw = b'{"metadata":{"title":"renamed"}}'
    response = await env.client.post(
        f"/v1/conversations/{conversation_id}?x=1", content=raw, headers={**headers, **JSON}
    )
    assert response.status_code == 200
    sent = env.upstream_requests(f"/v1/conversations/{conversation_id}")[-1]
    assert sent.body == raw and sent.query == b"x=1"
    assert response.json()["metadata"] == {"title": "renamed"}
    assert await env.owner(conversation_id) == me
    # An update is not a new conversation.
    assert len(await env.activity(me, "conversation")) == 1


async def test_update_upstream_error_is_relayed_verbatim(env: Env) -> None:
    _, headers, _ = await env.user()
    conversation_id = await create(env, headers)
    response = await env.client.post(
        f"/v1/conversations/{conversation_id}", content=b"{not json", headers={**headers, **JSON}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith("Failed to parse the request body as JSON")


async def test_delete_then_gone(env: Env) -> None:
    _, headers, _ = await env.user()
    conversation_id = await create(env, headers)
    response = await env.client.delete(f"/v1/conversations/{conversation_id}", headers=headers)
    assert response.status_code == 200
    assert response.json() == {
        "id": conversation_id,
        "object": "conversation.deleted",
        "deleted": True,
    }
    assert await env.owner(conversation_id) is None
    again = await env.client.delete(f"/v1/conversations/{conversation_id}", headers=headers)
    assert again.status_code == 404
    assert again.json() == {"error": "Conversation not found"}


async def test_conversation_gone_upstream(env: Env) -> None:
    """P6: a conversation deleted upstream (not through privchat) is 404 on get, disappears from
    the list (missing_ids), and DELETE removes the stale row instead of failing forever."""
    _, headers, me = await env.user()
    kept = await create(env, headers)
    gone = await create(env, headers)
    env.fake.store.conversations[gone.removeprefix("conv_")].deleted = True
    listed = (await env.client.get("/v1/conversations", headers=headers)).json()
    assert [c["id"] for c in listed] == [kept]
    response = await env.client.get(f"/v1/conversations/{gone}", headers=headers)
    assert response.status_code == 404
    assert response.json() == {"error": "Conversation not found"}
    assert await env.owner(gone) == me  # a read never deletes
    response = await env.client.delete(f"/v1/conversations/{gone}", headers=headers)
    assert response.status_code == 404
    assert response.json() == {"error": "Conversation not found"}
    assert await env.owner(gone) is None
    assert await env.owner(kept) == me


async def test_items_query_forwarded_raw(env: Env) -> None:
    """D1: the client's raw query string reaches the upstream unchanged."""
    _, headers, _ = await env.user()
    conversation_id = await create(env, headers)
    items = {
        "items": [{"type": "message", "role": "user", "content": f"message {n}"} for n in range(3)]
    }
    response = await env.client.post(
        f"/v1/conversations/{conversation_id}/items", json=items, headers=headers
    )
    assert response.status_code == 200
    created = [item["id"] for item in response.json()["data"]]
    query = f"limit=1&after={created[0]}&order=asc&include%5B%5D=x"
    response = await env.client.get(
        f"/v1/conversations/{conversation_id}/items?{query}", headers=headers
    )
    assert response.status_code == 200
    page = response.json()
    assert [item["id"] for item in page["data"]] == [created[1]]
    assert page["has_more"] is True
    sent = env.upstream_requests(f"/v1/conversations/{conversation_id}/items")[-1]
    assert sent.query == query.encode()
    # Upstream errors pass through verbatim.
    response = await env.client.get(
        f"/v1/conversations/{conversation_id}/items?limit=5000", headers=headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Limit cannot exceed 1000"


async def test_pin_and_archive_drop_the_client_body(env: Env) -> None:
    _, headers, _ = await env.user()
    conversation_id = await create(env, headers)
    for action, key in (("pin", "pinned_at"), ("archive", "archived_at")):
        response = await env.client.post(
            f"/v1/conversations/{conversation_id}/{action}", json={}, headers=headers
        )
        assert response.status_code == 200
        assert key in response.json()["metadata"]
        sent = env.upstream_requests(f"/{action}")[-1]
        assert sent.body == b"" and sent.header("content-type") is None
        response = await env.client.delete(
            f"/v1/conversations/{conversation_id}/{action}", headers=headers
        )
        assert response.status_code == 200
    meta = (await env.client.get(f"/v1/conversations/{conversation_id}", headers=headers)).json()[
        "metadata"
    ]
    assert "pinned_at" not in meta and "archived_at" not in meta


async def test_clone_tracks_the_new_conversation(env: Env) -> None:
    _, headers, me = await env.user()
    source = await create(env, headers, {"title": "src"})
    response = await env.client.post(
        f"/v1/conversations/{source}/clone",
        content=b'{"ignored": true}',
        headers={**headers, **JSON},
    )
    assert response.status_code == 201
    clone = response.json()["id"]
    assert clone != source and response.json()["metadata"]["cloned_from_id"] == source
    assert await env.owner(clone) == me
    assert env.upstream_requests("/clone")[-1].body == b""
    assert await env.activity(me, "conversation") == [
        {"conversation_id": source},
        {"conversation_id": clone},
    ]


async def test_compressed_tracked_bodies_are_relayed_raw_and_tracked(env: Env) -> None:
    """D4: gzip and br answers are inspected from a decoded copy; the client gets the bytes."""
    _, headers, me = await env.user()
    for encoding, decode in (("gzip", gzip.decompress), ("br", brotli.decompress)):
        async with env.client.stream(
            "POST",
            "/v1/conversations",
            json={"metadata": {"padding": "x" * 100}},
            headers={**headers, "accept-encoding": encoding},
        ) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        assert response.status_code == 201
        assert response.headers["content-encoding"] == encoding
        assert int(response.headers["content-length"]) == len(raw)
        conversation_id = json.loads(decode(raw))["id"]
        assert await env.owner(conversation_id) == me
        assert {"conversation_id": conversation_id} in await env.activity(me, "conversation")


async def test_malformed_ids_are_not_found(env: Env) -> None:
    _, headers, _ = await env.user()
    for bad in ("x" * 300, "conv_%E2%80%8B", "%20", "conv_%01"):
        for method, suffix in (("GET", ""), ("POST", "/items"), ("DELETE", "/pin")):
            response = await env.client.request(
                method, f"/v1/conversations/{bad}{suffix}", headers=headers
            )
            assert response.status_code == 404, (bad, method, suffix)
            assert response.json() == {"error": "Conversation not found"}
    assert env.upstream_requests() == []


async def test_tracking_never_transfers_ownership(env: Env) -> None:
    _, headers, owner = await env.user()
    _, _, other = await env.user()
    conversation_id = await create(env, headers)
    before = await env.db.fetchval(
        "SELECT updated_at FROM conversations WHERE id = $1", conversation_id
    )
    assert await conversations.track(env.db, conversation_id, other) is False
    assert await env.owner(conversation_id) == owner
    after = await env.db.fetchval(
        "SELECT updated_at FROM conversations WHERE id = $1", conversation_id
    )
    assert after == before  # another user's row is not even touched
    assert await conversations.track(env.db, conversation_id, owner) is True


async def test_list_upstream_failure_mid_list(env: Env) -> None:
    """One failing chunk fails the whole list with a documented 502; nothing is written."""
    _, headers, me = await env.user()
    good = [env.seed_upstream_conversation() for _ in range(1500)]
    rows = [(cid, me) for cid in good] + [("not-a-conversation-id", me)]
    await env.db.executemany("INSERT INTO conversations (id, user_id) VALUES ($1, $2)", rows)
    response = await env.client.get("/v1/conversations", headers=headers)
    assert response.status_code == 502
    assert response.json() == {
        "error": "Failed to list conversations: OpenAI API error: "
        "OpenAI batch API returned status 400"
    }
    assert await env.db.fetchval(
        "SELECT count(*) FROM conversations WHERE user_id = $1", me
    ) == len(rows)


async def test_list_upstream_unreachable(nursery: trio.Nursery, config) -> None:
    _, _, running = await open_env(nursery, config, openai_base_url="http://127.0.0.1:9/v1")
    async with httpx2.AsyncClient(base_url=running.url, timeout=30) as client:
        token = await login(client)
        me = await running.services.db.fetchval(
            "SELECT user_id FROM sessions WHERE token_hash = encode(sha256($1::bytea), 'hex')",
            token.encode(),
        )
        await running.services.db.execute(
            "INSERT INTO conversations (id, user_id) VALUES ($1, $2)",
            f"conv_{uuid.uuid4().hex}",
            me,
        )
        response = await client.get("/v1/conversations", headers=auth(token))
        assert response.status_code == 502
        assert response.json()["error"].startswith(
            "Failed to list conversations: OpenAI API error: API error: "
        )
        response = await client.post("/v1/conversations", json={}, headers=auth(token))
        assert response.status_code == 502
        assert response.json()["error"].startswith("OpenAI API error: API error: ")


async def test_list_five_thousand(env: Env) -> None:
    """All 5,000 come back, in DB order, fetched in 5 concurrent chunks of at most 1,000."""
    _, headers, me = await env.user()
    ids = [env.seed_upstream_conversation({"n": n}) for n in range(5000)]
    # updated_at strictly decreasing in list order: ids[0] is the most recent.
    await env.db.executemany(
        "INSERT INTO conversations (id, user_id, updated_at)"
        " VALUES ($1, $2, NOW() - make_interval(secs => $3))",
        [(cid, me, float(n)) for n, cid in enumerate(ids)],
    )
    response = await env.client.get("/v1/conversations", headers=headers)
    assert response.status_code == 200
    listed = response.json()
    assert [c["id"] for c in listed] == ids
    batches = env.upstream_requests("/v1/conversations/batch")
    assert len(batches) == 5
    assert sorted(len(json.loads(b.body)["ids"]) for b in batches) == [1000] * 5


async def _fail_inserts_for(env: Env, table: str, user_id: uuid.UUID) -> str:
    """A real PostgreSQL failure for this user's inserts into `table` (a trigger)."""
    name = f"fail_{uuid.uuid4().hex[:12]}"
    await env.db.execute(
        "CREATE OR REPLACE FUNCTION privchat_test_fail() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
    )
    await env.db.execute(
        f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW"
        f" WHEN (NEW.user_id = '{user_id}'::uuid) EXECUTE FUNCTION privchat_test_fail()"
    )
    return name


async def test_untrackable_create_is_undone(env: Env) -> None:
    """P9: when the ownership row cannot be written, the client gets a documented 500 instead of
    an id it could never use, and the new upstream conversation is deleted again."""
    _, headers, me = await env.user()
    source = await create(env, headers)
    trigger = await _fail_inserts_for(env, "conversations", me)
    try:
        response = await env.client.post("/v1/conversations", json={}, headers=headers)
        assert response.status_code == 500
        assert response.json() == {"error": "Failed to track conversation: Database error"}
        response = await env.client.post(f"/v1/conversations/{source}/clone", headers=headers)
        assert response.status_code == 500
    finally:
        await env.db.execute(f"DROP TRIGGER {trigger} ON conversations")
    live = [c.id for c in env.fake.store.conversations.values() if not c.deleted]
    assert live == [source]  # both new conversations were discarded upstream
    assert await env.db.fetchval("SELECT count(*) FROM conversations WHERE user_id = $1", me) == 1
    assert await env.activity(me, "conversation") == [{"conversation_id": source}]
