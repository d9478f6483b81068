"""File routes (api.md §2.6) through the real privchat against the fake upstream.

Scenario numbers refer to api.md §6.
"""

from __future__ import annotations

import gzip
import json

import brotli

from privchat.store import files
from tests.convfiles_env import BOUNDARY, Env, env_fixture, multipart, upload  # noqa: F401


async def test_scenario_10_upload_get_content_delete(env: Env) -> None:
    _, headers, me = await env.user()
    data = b"line one\nline two\n"
    body, ctype = multipart("test.txt", data)
    response = await env.client.post(
        "/v1/files?trace=1", content=body, headers={**headers, "content-type": ctype}
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()
    file_id = uploaded["id"]
    # Relayed byte for byte, boundary intact, query forwarded (D1).
    (sent,) = env.upstream_requests("/v1/files")
    assert sent.body == body
    assert sent.header("content-type") == ctype.encode()
    assert sent.query == b"trace=1"
    # Tracked before the answer; activity through the writer.
    row = await env.db.fetchrow("SELECT user_id, bytes, filename FROM files WHERE id = $1", file_id)
    assert row["user_id"] == me and row["bytes"] == len(data) and row["filename"] == "test.txt"
    assert await env.activity(me, "file_upload") == [{"file_id": file_id}]

    response = await env.client.get(f"/v1/files/{file_id}", headers=headers)
    assert response.status_code == 200
    assert response.json() == {
        "object": "file",
        "id": file_id,
        "bytes": len(data),
        "created_at": uploaded["created_at"],
        "filename": "test.txt",
        "purpose": "assistants",
    }
    assert len(env.upstream_requests(f"/v1/files/{file_id}")) == 0  # served from the DB

    response = await env.client.get(f"/v1/files/{file_id}/content", headers=headers)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["content-disposition"] == 'attachment; filename="test.txt"'

    response = await env.client.delete(f"/v1/files/{file_id}", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"id": file_id, "object": "file", "deleted": True}
    assert await env.db.fetchval("SELECT count(*) FROM files WHERE id = $1", file_id) == 0
    response = await env.client.get(f"/v1/files/{file_id}", headers=headers)
    assert response.status_code == 404


async def test_scenario_11_unknown_file(env: Env) -> None:
    _, headers, _ = await env.user()
    unknown = "file-00000000-0000-0000-0000-000000000000"
    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/content")):
        response = await env.client.request(method, f"/v1/files/{unknown}{suffix}", headers=headers)
        assert response.status_code == 404
        assert response.json() == {"error": "File not found"}
    assert env.upstream_requests() == []


async def _five(env: Env, headers: dict[str, str]) -> list[str]:
    ids = []
    for n in range(5):
        response = await upload(env, headers, f"file {n}\n".encode(), filename=f"f{n}.txt")
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return ids


async def test_scenarios_12_to_17_listing(env: Env) -> None:
    _, headers, _ = await env.user()
    uploaded = await _five(env, headers)

    # 12: limit=2 -> exactly 2, first_id and last_id present.
    page1 = (await env.client.get("/v1/files?limit=2", headers=headers)).json()
    assert page1["object"] == "list" and len(page1["data"]) == 2
    assert page1["first_id"] == page1["data"][0]["id"]
    assert page1["last_id"] == page1["data"][1]["id"]
    assert page1["has_more"] is True

    # 13: after=<last_id> -> nothing in common with page 1.
    page2 = (
        await env.client.get(f"/v1/files?limit=2&after={page1['last_id']}", headers=headers)
    ).json()
    assert page2["object"] == "list"
    assert not {f["id"] for f in page1["data"]} & {f["id"] for f in page2["data"]}

    # 14: asc and desc.
    for order in ("asc", "desc"):
        response = await env.client.get(f"/v1/files?limit=3&order={order}", headers=headers)
        assert response.status_code == 200 and response.json()["object"] == "list"
        assert len(response.json()["data"]) == 3

    # 15: bad order.
    response = await env.client.get("/v1/files?order=invalid", headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid order parameter. Must be 'asc' or 'desc'"}

    # 16: limit bounds.
    assert len((await env.client.get("/v1/files?limit=1", headers=headers)).json()["data"]) == 1
    response = await env.client.get("/v1/files?limit=10000", headers=headers)
    assert response.status_code == 200 and len(response.json()["data"]) == 5
    for bad in ("20000", "0", "-1"):
        response = await env.client.get(f"/v1/files?limit={bad}", headers=headers)
        assert response.status_code == 400
        assert response.json() == {"error": "Invalid limit parameter. Must be between 1 and 10000"}

    # 17: a cursor that does not exist -> empty page.
    response = await env.client.get(
        "/v1/files?after=file-nonexistent-id-12345&limit=10", headers=headers
    )
    assert response.status_code == 200
    assert response.json() == {"object": "list", "data": [], "has_more": False}

    # The list is served from PostgreSQL only.
    assert env.upstream_requests("/v1/files") == env.upstream_requests("/v1/files")[:5]
    assert len(env.upstream_requests()) == len(uploaded)


async def test_pages_walk_every_file_once_despite_equal_timestamps(env: Env) -> None:
    """P4: the fake stamps whole seconds, so these five files share created_at; keyset paging on
    (created_at, id) still returns each exactly once, in both orders."""
    _, headers, _ = await env.user()
    uploaded = set(await _five(env, headers))
    for order in ("asc", "desc"):
        seen: list[str] = []
        query = f"limit=2&order={order}"
        while True:
            page = (await env.client.get(f"/v1/files?{query}", headers=headers)).json()
            seen += [f["id"] for f in page["data"]]
            if not page["has_more"]:
                break
            query = f"limit=2&order={order}&after={page['last_id']}"
        assert len(seen) == 5 and set(seen) == uploaded
        stamps = [
            await env.db.fetchval("SELECT file_created_at FROM files WHERE id=$1", i) for i in seen
        ]
        assert stamps == sorted(stamps, reverse=order == "desc")


async def test_list_query_rules(env: Env) -> None:
    token_headers = (await env.user())[1]
    other_headers = (await env.user())[1]
    mine = (await upload(env, token_headers, purpose="assistants")).json()["id"]
    user_data = (await upload(env, token_headers, purpose="user_data")).json()["id"]
    theirs = (await upload(env, other_headers)).json()["id"]

    def ids(response) -> list[str]:  # type: ignore[no-untyped-def]
        assert response.status_code == 200, response.text
        return [f["id"] for f in response.json()["data"]]

    get = env.client.get
    assert set(ids(await get("/v1/files", headers=token_headers))) == {mine, user_data}
    assert ids(await get("/v1/files?purpose=user_data", headers=token_headers)) == [user_data]
    assert ids(await get("/v1/files?purpose=nothing", headers=token_headers)) == []
    # A cursor that is not the caller's, or does not match the purpose filter: empty.
    assert ids(await get(f"/v1/files?after={theirs}", headers=token_headers)) == []
    assert ids(await get(f"/v1/files?after={mine}&purpose=user_data", headers=token_headers)) == []
    assert ids(await get("/v1/files?after=%00", headers=token_headers)) == []
    assert ids(await get("/v1/files?purpose=%00", headers=token_headers)) == []
    # Framework-style rejections of unparseable parameters (E-TEXT).
    for query in ("limit=abc", "limit=1.5", "limit=", "limit=1&limit=2", "order=asc&order=desc"):
        response = await get(f"/v1/files?{query}", headers=token_headers)
        assert response.status_code == 400, query
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text.startswith("Failed to deserialize query string")
    response = await get("/v1/files?order=ASC", headers=token_headers)
    assert response.status_code == 400


async def test_multipart_without_a_file_is_the_upstreams_400(env: Env) -> None:
    _, headers, me = await env.user()
    body, ctype = multipart(None, b"", purpose="assistants")
    response = await env.client.post(
        "/v1/files", content=body, headers={**headers, "content-type": ctype}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = await env.client.post(
        "/v1/files", content=b"not multipart", headers={**headers, "content-type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid multipart form data"
    assert await env.db.fetchval("SELECT count(*) FROM files WHERE user_id = $1", me) == 0
    assert await env.activity(me, "file_upload") == []


async def test_compressed_upload_answer_is_tracked_and_relayed_raw(env: Env) -> None:
    _, headers, me = await env.user()
    for encoding, decode in (("gzip", gzip.decompress), ("br", brotli.decompress)):
        body, ctype = multipart("notes.md", b"# notes\n", content_type="text/markdown")
        async with env.client.stream(
            "POST",
            "/v1/files",
            content=body,
            headers={**headers, "content-type": ctype, "accept-encoding": encoding},
        ) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        assert response.status_code == 201
        assert response.headers["content-encoding"] == encoding
        file_id = json.loads(decode(raw))["id"]
        assert (await files.get(env.db, file_id, me)) is not None


async def test_content_is_streamed_raw_with_compression(env: Env) -> None:
    _, headers, _ = await env.user()
    data = ("0123456789abcdef" * 4096).encode()
    file_id = (await upload(env, headers, data)).json()["id"]
    async with env.client.stream(
        "GET", f"/v1/files/{file_id}/content", headers={**headers, "accept-encoding": "gzip"}
    ) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert len(raw) < len(data) and gzip.decompress(raw) == data


async def test_file_gone_upstream_is_removed_on_delete(env: Env) -> None:
    _, headers, _ = await env.user()
    file_id = (await upload(env, headers)).json()["id"]
    del env.fake.store.files[file_id]
    response = await env.client.get(f"/v1/files/{file_id}/content", headers=headers)
    assert response.status_code == 404  # the upstream's 404, relayed
    response = await env.client.delete(f"/v1/files/{file_id}", headers=headers)
    assert response.status_code == 404
    assert response.json() == {"error": "File not found"}
    assert await env.db.fetchval("SELECT count(*) FROM files WHERE id = $1", file_id) == 0


async def test_upload_with_expiry_and_large_body(env: Env) -> None:
    _, headers, me = await env.user()
    data = b"x" * (3 * 1024 * 1024)
    body, ctype = multipart("big.txt", data, purpose="user_data")
    extra = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="expires_after[anchor]"\r\n\r\n'
        f"created_at\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; "
        f'name="expires_after[seconds]"\r\n\r\n36000\r\n'
    ).encode()
    body = body[: -len(f"--{BOUNDARY}--\r\n")] + extra + f"--{BOUNDARY}--\r\n".encode()
    response = await env.client.post(
        "/v1/files", content=body, headers={**headers, "content-type": ctype}
    )
    assert response.status_code == 201, response.text
    obj = response.json()
    assert obj["expires_at"] == obj["created_at"] + 36000
    assert env.upstream_requests("/v1/files")[-1].body == body
    got = (await env.client.get(f"/v1/files/{obj['id']}", headers=headers)).json()
    assert got["expires_at"] == obj["expires_at"] and got["bytes"] == len(data)
    assert await env.db.fetchval("SELECT user_id FROM files WHERE id = $1", obj["id"]) == me


async def test_untrackable_upload_is_undone(env: Env) -> None:
    """P9: a file whose row cannot be written is deleted upstream; the client gets a 500."""
    from tests.test_conversations import _fail_inserts_for

    _, headers, me = await env.user()
    trigger = await _fail_inserts_for(env, "files", me)
    try:
        response = await upload(env, headers)
    finally:
        await env.db.execute(f"DROP TRIGGER {trigger} ON files")
    assert response.status_code == 500
    assert response.json() == {"error": "Failed to track file: Database error"}
    assert env.fake.store.files == {}
    assert env.fake.requests[-1].method == "DELETE"
    assert await env.activity(me, "file_upload") == []


async def test_file_tracking_never_transfers_ownership(env: Env) -> None:
    """P5: the reference's upsert would hand a file to whoever the upstream returns it for;
    privchat leaves another user's row alone."""
    _, headers, owner = await env.user()
    _, _, other = await env.user()
    file_id = (await upload(env, headers)).json()["id"]
    record = await files.get(env.db, file_id, owner)
    assert record is not None
    assert await files.track(env.db, record, other) is False
    assert await env.db.fetchval("SELECT user_id FROM files WHERE id = $1", file_id) == owner
    assert await files.get(env.db, file_id, other) is None
