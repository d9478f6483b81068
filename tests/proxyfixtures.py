"""Fixtures for the proxy tests: the fake NEAR AI Cloud, privchat in front of it, and helpers.

Import the fixtures into a test module: ``from tests.proxyfixtures import fake, proxy, pclient``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import trio

from privchat.auth import sessions
from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud
from privchat.runtime import Running
from privchat.store import conversations as conversation_store
from tests.conftest import auth, login, start_server

API_KEY = "sk-test"


@dataclass
class Proxy:
    fake: FakeCloud
    fake_url: str  # http://127.0.0.1:PORT/v1
    server: Running
    client: httpx2.AsyncClient

    @property
    def url(self) -> str:
        return self.server.url

    async def user(self, email: str | None = None) -> tuple[str, uuid.UUID]:
        """A fresh mock-login user: (session token, user id)."""
        token = await login(self.client, email)
        session = await sessions.find(self.server.services.db, token)
        assert session is not None
        return token, session.user_id

    async def headers(self) -> dict[str, str]:
        token, _ = await self.user()
        return auth(token)

    async def own_conversation(self, user_id: uuid.UUID) -> str:
        """Create a conversation on the fake and record `user_id` as its owner in privchat."""
        async with httpx2.AsyncClient(
            base_url=self.fake_url, headers={"authorization": f"Bearer {API_KEY}"}
        ) as direct:
            created = await direct.post("/conversations", json={})
        assert created.status_code == 201, created.text
        conversation_id = created.json()["id"]
        await conversation_store.track(self.server.services.db, conversation_id, user_id)
        return conversation_id


async def start_fake(nursery: trio.Nursery) -> tuple[FakeCloud, str]:
    fake = FakeCloud(api_key=API_KEY)
    base_url = await nursery.start(serve_fake_cloud, fake)
    return fake, base_url


@pytest.fixture
async def proxy(nursery: trio.Nursery, config: Any) -> AsyncIterator[Proxy]:
    fake, base_url = await start_fake(nursery)
    server = await start_server(nursery, config, openai_base_url=base_url, openai_api_key=API_KEY)
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
        yield Proxy(fake, base_url, server, client)


def body(model: str = "privchat-dev/echo", text: str = "Say hello", **extra: Any) -> bytes:
    data: dict[str, Any] = {
        "model": model,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}],
        "stream": True,
    }
    data.update(extra)
    return json.dumps(data).encode()


JSON = {"content-type": "application/json"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
