"""The ownership matrix: another user's conversation and file ids are 404 on every route, and
nothing is sent upstream for them (api.md §2.5, §2.6; §5 item 6)."""

from __future__ import annotations

from tests.convfiles_env import Env, env_fixture, upload  # noqa: F401

CONVERSATION_ROUTES = [
    ("GET", ""),
    ("POST", ""),
    ("DELETE", ""),
    ("GET", "/items"),
    ("POST", "/items"),
    ("POST", "/pin"),
    ("DELETE", "/pin"),
    ("POST", "/archive"),
    ("DELETE", "/archive"),
    ("POST", "/clone"),
]
FILE_ROUTES = [("GET", ""), ("DELETE", ""), ("GET", "/content")]
NOT_FOUND = {"error": "Conversation not found"}
FILE_NOT_FOUND = {"error": "File not found"}


async def _owned_by_first_user(env: Env) -> tuple[dict[str, str], str, str]:
    _, headers, _ = await env.user()
    response = await env.client.post("/v1/conversations", json={"items": []}, headers=headers)
    assert response.status_code == 201
    conversation_id = response.json()["id"]
    items = {"items": [{"type": "message", "role": "user", "content": "hi"}]}
    response = await env.client.post(
        f"/v1/conversations/{conversation_id}/items", json=items, headers=headers
    )
    assert response.status_code == 200
    response = await upload(env, headers)
    assert response.status_code == 201
    return headers, conversation_id, response.json()["id"]


async def test_matrix_other_user_gets_404_and_nothing_goes_upstream(env: Env) -> None:
    owner_headers, conversation_id, file_id = await _owned_by_first_user(env)
    _, intruder, _ = await env.user()
    before = len(env.fake.requests)
    body = {
        "metadata": {"title": "taken"},
        "items": [{"type": "message", "role": "user", "content": "x"}],
    }
    for method, suffix in CONVERSATION_ROUTES:
        response = await env.client.request(
            method,
            f"/v1/conversations/{conversation_id}{suffix}?limit=1",
            json=body,
            headers=intruder,
        )
        assert response.status_code == 404, (method, suffix)
        assert response.json() == NOT_FOUND, (method, suffix)
    for method, suffix in FILE_ROUTES:
        response = await env.client.request(
            method, f"/v1/files/{file_id}{suffix}", headers=intruder
        )
        assert response.status_code == 404, (method, suffix)
        assert response.json() == FILE_NOT_FOUND, (method, suffix)
    # The cursor of someone else's file yields an empty page, not their files.
    response = await env.client.get(f"/v1/files?after={file_id}", headers=intruder)
    assert response.json() == {"object": "list", "data": [], "has_more": False}
    assert env.fake.requests[before:] == []  # not a single upstream request

    # Lists never show the other user's objects; the batch call only carries the caller's ids.
    assert (await env.client.get("/v1/conversations", headers=intruder)).json() == []
    assert (await env.client.get("/v1/files", headers=intruder)).json()["data"] == []
    assert env.fake.requests[before:] == []

    # The owner still has everything, unchanged.
    response = await env.client.get(f"/v1/conversations/{conversation_id}", headers=owner_headers)
    assert response.status_code == 200 and response.json()["metadata"] == {}
    items = await env.client.get(
        f"/v1/conversations/{conversation_id}/items", headers=owner_headers
    )
    assert len(items.json()["data"]) == 1
    assert (await env.client.get(f"/v1/files/{file_id}", headers=owner_headers)).status_code == 200


async def test_deleted_users_ids_are_gone_for_everyone(env: Env) -> None:
    """A deleted user's rows go with them (ON DELETE CASCADE): their ids are 404 for every other
    user, can never be claimed, and the old session no longer works."""
    owner_headers, conversation_id, file_id = await _owned_by_first_user(env)
    owner = await env.db.fetchval(
        "SELECT user_id FROM conversations WHERE id = $1", conversation_id
    )
    await env.db.execute("DELETE FROM users WHERE id = $1", owner)
    await env.server.services.sessions.synced(env.db)  # the cascade reached the session cache
    assert (
        await env.db.fetchval("SELECT count(*) FROM conversations WHERE id = $1", conversation_id)
        == 0
    )
    assert await env.db.fetchval("SELECT count(*) FROM files WHERE id = $1", file_id) == 0
    response = await env.client.get("/v1/conversations", headers=owner_headers)
    assert response.status_code == 401

    _, other, _ = await env.user()
    before = len(env.fake.requests)
    for method, suffix in CONVERSATION_ROUTES:
        response = await env.client.request(
            method, f"/v1/conversations/{conversation_id}{suffix}", headers=other
        )
        assert response.status_code == 404 and response.json() == NOT_FOUND
    for method, suffix in FILE_ROUTES:
        response = await env.client.request(method, f"/v1/files/{file_id}{suffix}", headers=other)
        assert response.status_code == 404 and response.json() == FILE_NOT_FOUND
    assert env.fake.requests[before:] == []
