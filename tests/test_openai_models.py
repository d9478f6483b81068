"""`GET /v1/models` and `/v1/models/{id}` with the official `openai` SDK: public models for users,
every model for admins."""

from __future__ import annotations

import functools
import uuid
from typing import Any

import openai
import pytest
import trio

from tests.conftest import ADMIN_DOMAIN, auth, login
from tests.proxyfixtures import Proxy, proxy  # noqa: F401

PRIVATE = "zai-org/GLM-4.6"


def _sdk(base_url: str, token: str) -> dict[str, Any]:
    client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=30)
    listed = [(m.id, m.object, m.owned_by) for m in client.models.list()]
    echo = client.models.retrieve("privchat-dev/echo")
    try:
        client.models.retrieve(PRIVATE)
        private = "visible"
    except openai.NotFoundError as exc:
        private = exc.body["code"] if isinstance(exc.body, dict) else str(exc.body)
    return {"listed": listed, "echo": (echo.id, echo.object), "private": private}


async def test_models_list_and_retrieve_with_the_openai_sdk(proxy: Proxy) -> None:  # noqa: F811
    admin_token = await login(proxy.client, f"admin-{uuid.uuid4().hex[:8]}@{ADMIN_DOMAIN}")
    admin = auth(admin_token)
    hidden = await proxy.client.patch(
        "/v1/admin/models", json={PRIVATE: {"public": False}}, headers=admin
    )
    assert hidden.status_code == 200, hidden.text
    try:
        await _check(proxy, admin_token)
    finally:  # the database is shared by the whole run
        reset = await proxy.client.delete(f"/v1/admin/models/{PRIVATE}", headers=admin)
        assert reset.status_code in (200, 204), reset.text


async def _check(proxy: Proxy, admin_token: str) -> None:  # noqa: F811
    token, _ = await proxy.user()
    user = await trio.to_thread.run_sync(functools.partial(_sdk, proxy.url + "/v1", token))
    ids = [model_id for model_id, _, _ in user["listed"]]
    assert "privchat-dev/echo" in ids and PRIVATE not in ids
    assert all(kind == "model" and owner for _, kind, owner in user["listed"])
    assert user["echo"] == ("privchat-dev/echo", "model")
    assert user["private"] == "model_not_found"

    seen = await trio.to_thread.run_sync(functools.partial(_sdk, proxy.url + "/v1", admin_token))
    assert PRIVATE in [model_id for model_id, _, _ in seen["listed"]]
    assert seen["private"] == "visible"


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/privchat-dev/echo"])
async def test_models_need_a_session(proxy: Proxy, path: str) -> None:  # noqa: F811
    assert (await proxy.client.get(path)).status_code == 401
