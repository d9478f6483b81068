"""`/v1/users/me`, `/v1/users/me/settings` and `GET /v1/configs` (api.md §2.3, §2.4)."""

from __future__ import annotations

import re
import uuid

import httpx2

from privchat.runtime import Running

from .conftest import auth, login

TS_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?\+00:00$")
DEFAULTS = {"notification": False, "web_search": True, "appearance": "System"}


async def test_me_shape_and_linked_accounts(client: httpx2.AsyncClient) -> None:
    email = f"me-{uuid.uuid4().hex[:8]}@near"
    response = await client.post(
        "/v1/auth/mock-login",
        json={
            "email": email,
            "name": "Me",
            "avatar_url": "https://a/b.png",
            "oauth_provider": "NEAR",
        },
    )
    token = response.json()["token"]
    me = await client.get("/v1/users/me", headers=auth(token))
    assert me.status_code == 200
    body = me.json()
    assert set(body) == {"user", "linked_accounts"}
    user = body["user"]
    assert set(user) == {"id", "email", "name", "avatar_url", "created_at", "updated_at"}
    assert uuid.UUID(user["id"]).version == 4 and user["id"] == user["id"].lower()
    assert (user["email"], user["name"], user["avatar_url"]) == (email, "Me", "https://a/b.png")
    assert TS_OFFSET.match(user["created_at"]) and TS_OFFSET.match(user["updated_at"])
    assert [a["provider"] for a in body["linked_accounts"]] == ["near"]
    assert set(body["linked_accounts"][0]) == {"provider", "linked_at"}  # no provider_user_id
    assert TS_OFFSET.match(body["linked_accounts"][0]["linked_at"])


async def test_me_without_links_and_null_fields(client: httpx2.AsyncClient) -> None:
    email = f"plain-{uuid.uuid4().hex[:8]}@example.com"
    token = (await client.post("/v1/auth/mock-login", json={"email": email})).json()["token"]
    body = (await client.get("/v1/users/me", headers=auth(token))).json()
    assert body["linked_accounts"] == []
    assert body["user"]["name"] is None and body["user"]["avatar_url"] is None


async def test_users_routes_need_a_session(client: httpx2.AsyncClient) -> None:
    """§1.2: auth runs before body parsing, so a malformed body without a token is still 401."""
    for method, path in (
        ("GET", "/v1/users/me"),
        ("GET", "/v1/users/me/settings"),
        ("POST", "/v1/users/me/settings"),
        ("PATCH", "/v1/users/me/settings"),
        ("GET", "/v1/configs"),
    ):
        response = await client.request(method, path, content=b"{nope")
        assert response.status_code == 401, (method, path)
        assert response.json()["message"] == "Missing authorization header"


async def test_scenario_46_settings_default(client: httpx2.AsyncClient, server: Running) -> None:
    """Scenario 46: GET settings of a fresh user → 2xx with user_id and the defaults, no row."""
    token = await login(client, "test_user_settings@example.com")
    response = await client.get("/v1/users/me/settings", headers=auth(token))
    assert response.status_code == 200
    body = response.json()
    assert body["settings"] == DEFAULTS
    assert list(body["settings"]) == ["notification", "web_search", "appearance"]
    me = (await client.get("/v1/users/me", headers=auth(token))).json()
    assert body["user_id"] == me["user"]["id"]
    rows = await server.services.db.fetchval(
        "SELECT COUNT(*) FROM user_settings WHERE user_id = $1", uuid.UUID(body["user_id"])
    )
    assert rows == 0


async def test_scenario_47_patch_merges(client: httpx2.AsyncClient) -> None:
    """Scenario 47: PATCH merges provided non-null fields; null/absent keep the old value."""
    token = await login(client, "test_user_settings_update@example.com")
    h = auth(token)
    first = await client.patch(
        "/v1/users/me/settings",
        json={"notification": True, "system_prompt": "You are a helpful assistant."},
        headers=h,
    )
    assert first.status_code == 200
    assert first.json()["settings"]["notification"] is True
    assert first.json()["settings"]["system_prompt"] == "You are a helpful assistant."
    second = await client.patch("/v1/users/me/settings", json={"notification": False}, headers=h)
    assert second.json()["settings"]["notification"] is False
    assert second.json()["settings"]["system_prompt"] == "You are a helpful assistant."
    third = await client.patch(
        "/v1/users/me/settings", json={"system_prompt": "You are a creative writer."}, headers=h
    )
    assert third.json()["settings"]["notification"] is False
    assert third.json()["settings"]["system_prompt"] == "You are a creative writer."
    read = await client.get("/v1/users/me/settings", headers=h)
    assert read.status_code == 200
    assert read.json()["settings"] == {
        "notification": False,
        "system_prompt": "You are a creative writer.",
        "web_search": True,
        "appearance": "System",
    }
    # null cannot clear the prompt via PATCH; "" is a value; {} is a valid PATCH
    kept = await client.patch("/v1/users/me/settings", json={"system_prompt": None}, headers=h)
    assert kept.json()["settings"]["system_prompt"] == "You are a creative writer."
    empty = await client.patch("/v1/users/me/settings", json={"system_prompt": ""}, headers=h)
    assert empty.json()["settings"]["system_prompt"] == ""
    noop = await client.patch("/v1/users/me/settings", json={}, headers=h)
    assert noop.status_code == 200 and noop.json()["settings"]["system_prompt"] == ""


async def test_post_replaces_and_clears_prompt(client: httpx2.AsyncClient) -> None:
    token = await login(client)
    h = auth(token)
    full = {"notification": True, "system_prompt": "p", "appearance": "Dark", "web_search": False}
    saved = await client.post("/v1/users/me/settings", json=full, headers=h)
    assert saved.status_code == 200
    assert saved.json()["settings"] == {
        "notification": True,
        "system_prompt": "p",
        "web_search": False,
        "appearance": "Dark",
    }
    cleared = await client.post(
        "/v1/users/me/settings",
        json={
            "notification": False,
            "web_search": True,
            "appearance": "Light",
            "system_prompt": None,
        },
        headers=h,
    )
    assert cleared.json()["settings"] == {
        "notification": False,
        "web_search": True,
        "appearance": "Light",
    }
    read = await client.get("/v1/users/me/settings", headers=h)
    assert read.json()["settings"] == cleared.json()["settings"]


async def test_settings_bad_input(client: httpx2.AsyncClient) -> None:
    """Wrong types, lowercase appearance, missing required fields → 422 E-TEXT; bad JSON → 400."""
    h = auth(await login(client))
    full = {"notification": True, "web_search": True, "appearance": "System"}
    cases = [
        ("POST", {"json": {"web_search": True, "appearance": "System"}}, 422),
        ("POST", {"json": {**full, "appearance": "dark"}}, 422),
        ("POST", {"json": {**full, "notification": "true"}}, 422),
        ("POST", {"json": {**full, "system_prompt": 5}}, 422),
        ("PATCH", {"json": {"web_search": 1}}, 422),
        ("PATCH", {"json": {"appearance": "LIGHT"}}, 422),
        ("PATCH", {"json": []}, 422),
        ("PATCH", {"content": b"{", "headers": {"content-type": "application/json"}}, 400),
        ("PATCH", {"content": b"{}"}, 415),
    ]
    for method, kwargs, status in cases:
        headers = {**h, **kwargs.pop("headers", {})}
        response = await client.request(method, "/v1/users/me/settings", headers=headers, **kwargs)
        assert response.status_code == status, (method, kwargs, response.text)
        assert response.headers["content-type"].startswith("text/plain")
    read = await client.get("/v1/users/me/settings", headers=h)
    assert read.json()["settings"] == DEFAULTS  # nothing was written


async def test_system_prompt_limit_is_65536_bytes(client: httpx2.AsyncClient) -> None:
    h = auth(await login(client))
    base = {"notification": False, "web_search": True, "appearance": "System"}
    at_limit = "é" * 32768  # 65,536 UTF-8 bytes
    ok = await client.post(
        "/v1/users/me/settings", json={**base, "system_prompt": at_limit}, headers=h
    )
    assert ok.status_code == 200
    over = "é" * 32768 + "a"
    for method, body in (
        ("POST", {**base, "system_prompt": over}),
        ("PATCH", {"system_prompt": over}),
    ):
        response = await client.request(method, "/v1/users/me/settings", json=body, headers=h)
        assert response.status_code == 400
        assert response.json() == {
            "code": "bad_request",
            "message": "System prompt exceeds max length",
        }
    read = await client.get("/v1/users/me/settings", headers=h)
    assert read.json()["settings"]["system_prompt"] == at_limit


async def test_stored_settings_fill_missing_fields(
    client: httpx2.AsyncClient, server: Running
) -> None:
    """Old rows stay readable: missing fields come from the defaults."""
    token = await login(client)
    me = (await client.get("/v1/users/me", headers=auth(token))).json()
    await server.services.db.execute(
        "INSERT INTO user_settings (user_id, content) VALUES ($1, $2)",
        uuid.UUID(me["user"]["id"]),
        {"appearance": "Dark"},
    )
    body = (await client.get("/v1/users/me/settings", headers=auth(token))).json()
    assert body["settings"] == {"notification": False, "web_search": True, "appearance": "Dark"}


async def test_configs_null_without_row(client: httpx2.AsyncClient, server: Running) -> None:
    """§2.4: no `config` row → 200 with the JSON literal null; a row without a model → {}."""
    await server.services.db.execute("DELETE FROM system_configs WHERE key = 'config'")
    token = await login(client)
    response = await client.get("/v1/configs", headers=auth(token))
    assert response.status_code == 200
    assert response.content == b"null"
    await server.services.db.execute(
        "INSERT INTO system_configs (key, value) VALUES ('config', '{}')"
    )
    assert (await client.get("/v1/configs", headers=auth(token))).json() == {}


async def test_scenario_39_configs_need_a_session(client: httpx2.AsyncClient) -> None:
    """Scenario 39: GET /v1/configs without Authorization → 401."""
    response = await client.get("/v1/configs")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_scenario_40_non_admin_reads_configs(client: httpx2.AsyncClient) -> None:
    """Scenario 40: a non-admin GET /v1/configs → 200."""
    token = await login(client, "reader@no-admin.org")
    response = await client.get("/v1/configs", headers=auth(token))
    assert response.status_code == 200
