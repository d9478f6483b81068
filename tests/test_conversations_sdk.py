"""The official `openai` SDK against privchat (session token as the API key), run in a thread."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import openai
import trio

from tests.convfiles_env import Env, env_fixture  # noqa: F401


def _conversation_flow(base_url: str, token: str) -> dict[str, Any]:
    client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=30)
    conversation = client.conversations.create(metadata={"topic": "sdk"})
    created = client.conversations.items.create(
        conversation.id,
        items=[{"type": "message", "role": "user", "content": f"message {n}"} for n in range(4)],
    )
    ids = [item.id for item in created.data]
    page = client.conversations.items.list(conversation.id, limit=2, after=ids[0])
    everything = [item.id for item in client.conversations.items.list(conversation.id, limit=3)]
    return {
        "conversation": conversation.id,
        "created": ids,
        "page": [item.id for item in page.data],
        "has_more": page.has_more,
        "everything": everything,
    }


def _file_flow(base_url: str, token: str, path: Path) -> dict[str, Any]:
    client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=30)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="assistants")
    fetched = client.files.retrieve(uploaded.id)
    content = client.files.content(uploaded.id).read()
    deleted = client.files.delete(uploaded.id)
    return {
        "id": uploaded.id,
        "filename": fetched.filename,
        "bytes": fetched.bytes,
        "content": content,
        "deleted": deleted.deleted,
    }


async def test_sdk_conversations_create_and_items_paging(env: Env) -> None:
    token, _, me = await env.user()
    out = await trio.to_thread.run_sync(
        functools.partial(_conversation_flow, env.server.url + "/v1", token)
    )
    assert out["conversation"].startswith("conv_")
    assert await env.owner(out["conversation"]) == me
    # limit and after reached the upstream (D1) and paged as asked.
    assert out["page"] == out["created"][1:3] and out["has_more"] is True
    listed = [r for r in env.upstream_requests("/items") if r.method == "GET"]
    assert listed[0].query in (
        f"limit=2&after={out['created'][0]}".encode(),
        f"after={out['created'][0]}&limit=2".encode(),
    )
    # Auto-pagination follows `after` through privchat until has_more is false.
    assert out["everything"] == out["created"]
    assert [r.query.decode().count("after=") for r in listed[1:]] == [0, 1]


async def test_sdk_files_create_and_content(env: Env, tmp_path: Path) -> None:
    token, _, me = await env.user()
    path = tmp_path / "report.txt"
    data = b"privchat file\n" + bytes(range(32, 127)) * 100
    path.write_bytes(data)
    out = await trio.to_thread.run_sync(
        functools.partial(_file_flow, env.server.url + "/v1", token, path)
    )
    assert out["content"] == data
    assert out["filename"] == "report.txt" and out["bytes"] == len(data)
    assert out["deleted"] is True
    (upload,) = env.fake.requests_to("/v1/files", "POST")
    assert upload.header("content-type").startswith(b"multipart/form-data; boundary=")
    assert data in upload.body
    assert await env.db.fetchval("SELECT count(*) FROM files WHERE user_id = $1", me) == 0
