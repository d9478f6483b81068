"""The environment of the conversation/file tests: the fake upstream, privchat aimed at it, a
client, and helpers to seed and read the database directly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import trio

from privchat.config import Config
from privchat.devtools.fake_cloud import FakeCloud, RecordedRequest, serve_fake_cloud
from privchat.devtools.fake_cloud.store import Conversation
from privchat.runtime import Running
from privchat.store import Database
from tests.conftest import auth, login, start_server

API_KEY = "sk-test"
BOUNDARY = "privchat-test-boundary-7d1c"


@dataclass
class Env:
    fake: FakeCloud
    base_url: str
    server: Running
    client: httpx2.AsyncClient

    @property
    def db(self) -> Database:
        return self.server.services.db

    async def user(self) -> tuple[str, dict[str, str], uuid.UUID]:
        """A fresh user: (token, auth headers, user id)."""
        token = await login(self.client)
        me = await self.db.fetchval(
            "SELECT user_id FROM sessions WHERE token_hash = encode(sha256($1::bytea), 'hex')",
            token.encode(),
        )
        return token, auth(token), me

    def upstream_requests(self, path_part: str = "") -> list[RecordedRequest]:
        return [r for r in self.fake.requests if path_part in r.path]

    def seed_upstream_conversation(self, metadata: Any = None) -> str:
        conv = Conversation(
            core=uuid.uuid4().hex, created_at=1_700_000_000, metadata=metadata or {}
        )
        self.fake.store.conversations[conv.core] = conv
        return conv.id

    async def owner(self, conversation_id: str) -> uuid.UUID | None:
        return await self.db.fetchval(
            "SELECT user_id FROM conversations WHERE id = $1", conversation_id
        )

    async def activity(self, user_id: uuid.UUID, kind: str) -> list[Any]:
        await self.server.services.activity.flush()
        rows = await self.db.fetch(
            "SELECT metadata FROM user_activity_log WHERE user_id = $1 AND activity_type = $2"
            " ORDER BY created_at",
            user_id,
            kind,
        )
        return [row["metadata"] for row in rows]


async def open_env(
    nursery: trio.Nursery, config: Config, **changes: Any
) -> tuple[FakeCloud, str, Running]:
    fake = FakeCloud(api_key=API_KEY)
    base_url = await nursery.start(serve_fake_cloud, fake)
    changes.setdefault("openai_base_url", base_url)
    changes.setdefault("openai_api_key", API_KEY)
    running = await start_server(nursery, config, **changes)
    return fake, base_url, running


@pytest.fixture(name="env")
async def env_fixture(nursery: trio.Nursery, config: Config) -> AsyncIterator[Env]:
    fake, base_url, running = await open_env(nursery, config)
    async with httpx2.AsyncClient(base_url=running.url, timeout=60) as client:
        yield Env(fake, base_url, running, client)


def multipart(
    filename: str | None,
    data: bytes,
    *,
    purpose: str | None = "assistants",
    content_type: str = "text/plain",
    boundary: str = BOUNDARY,
) -> tuple[bytes, str]:
    """A multipart/form-data body built by hand (so its exact bytes are known)."""
    parts = []
    if filename is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    if purpose is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
            f"{purpose}\r\n".encode()
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def upload(
    env: Env, headers: dict[str, str], data: bytes = b"hello file\n", **kw: Any
) -> httpx2.Response:
    body, ctype = multipart(kw.pop("filename", "test.txt"), data, **kw)
    return await env.client.post(
        "/v1/files", content=body, headers={**headers, "content-type": ctype}
    )
