"""Admin users, activity, VPC revoke and configs (api.md §2.10.1, 2.10.2, 2.10.6, 2.10.7)."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace

import httpx2
import trio

from privchat.runtime import Running
from privchat.upstream import Upstream

from .conftest import auth, login
from .fakes import FakeRequest, Reply, serve_handler
from .test_auth_sessions import serve_services

TS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")


async def test_scenario_1_admin_lists_users(client: httpx2.AsyncClient) -> None:
    """Scenario 1: test_admin@admin.org GET /v1/admin/users → 200."""
    token = await login(client, "test_admin@admin.org")
    response = await client.get("/v1/admin/users", headers=auth(token))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"users", "limit", "offset", "total"}
    assert (body["limit"], body["offset"]) == (20, 0)
    assert set(body["users"][0]) == {
        "id",
        "email",
        "name",
        "avatar_url",
        "created_at",
        "updated_at",
    }


async def test_scenario_2_non_admin_gets_403(client: httpx2.AsyncClient) -> None:
    """Scenario 2: test_user@no-admin.org GET /v1/admin/users → 403 Admin access required."""
    token = await login(client, "test_user@no-admin.org")
    response = await client.get("/v1/admin/users", headers=auth(token))
    assert response.status_code == 403
    assert response.json()["message"] == "Admin access required"


async def test_scenario_3_pagination(client: httpx2.AsyncClient) -> None:
    """Scenario 3: limit=2&offset=0 → ≤ 2 users, total ≥ 4; newest first."""
    token = await login(client, "test_admin_pagination@admin.org")
    for email in ("user1@example.com", "user2@example.com", "user3@example.com"):
        await login(client, email)
    response = await client.get("/v1/admin/users?limit=2&offset=0", headers=auth(token))
    assert response.status_code == 200
    body = response.json()
    assert (body["limit"], body["offset"]) == (2, 0)
    assert len(body["users"]) <= 2 and body["total"] >= 4
    created = [u["created_at"] for u in body["users"]]
    assert created == sorted(created, reverse=True)


async def test_users_total_is_true_count_past_the_end(client: httpx2.AsyncClient) -> None:
    """Deviation I2: `total` counts all users even when `offset` is past the end (the reference
    computes it with a window function and reports 0 there)."""
    token = await login(client, "pager@admin.org")
    response = await client.get("/v1/admin/users?limit=100&offset=100000", headers=auth(token))
    body = response.json()
    assert body["users"] == [] and body["total"] >= 1


async def test_users_pagination_validation(client: httpx2.AsyncClient) -> None:
    token = await login(client, "validator@admin.org")
    cases = [
        ("limit=0", 400, "limit is less than minimum value of 1"),
        ("limit=101", 400, "limit exceeds maximum value of 100"),
        ("offset=-1", 400, "offset cannot be negative"),
    ]
    for query, status, message in cases:
        response = await client.get(f"/v1/admin/users?{query}", headers=auth(token))
        assert response.status_code == status
        assert response.json() == {"code": "bad_request", "message": message}
    for query in ("limit=abc", "offset=1.5", "limit=99999999999999999999"):
        response = await client.get(f"/v1/admin/users?{query}", headers=auth(token))
        assert response.status_code == 400, query
        assert response.text.startswith("Failed to deserialize query string")


async def test_repeated_page_parameters_are_400_naming_them(client: httpx2.AsyncClient) -> None:
    """Issue 14, finding 11: a repeated `limit`/`offset` is rejected, not silently last-wins."""
    token = await login(client, "duplicates@admin.org")
    for name, query in (("limit", "limit=1&limit=100"), ("offset", "offset=0&limit=5&offset=3")):
        response = await client.get(f"/v1/admin/users?{query}", headers=auth(token))
        assert response.status_code == 400, query
        assert response.text == f"Failed to deserialize query string: duplicate field `{name}`"
    response = await client.get("/v1/admin/users?limit=1&offset=0", headers=auth(token))
    assert response.status_code == 200 and response.json()["limit"] == 1


async def test_scenario_4_admin_revokes_vpc(client: httpx2.AsyncClient) -> None:
    """Scenario 4: POST /v1/admin/vpc/revoke as admin → 204 (static-key mode: a no-op)."""
    token = await login(client, "test_admin_revoke@admin.org")
    response = await client.post("/v1/admin/vpc/revoke", headers=auth(token))
    assert response.status_code == 204
    assert response.content == b""


async def test_scenario_5_non_admin_cannot_revoke(client: httpx2.AsyncClient) -> None:
    """Scenario 5: POST /v1/admin/vpc/revoke as non-admin → 403 Admin access required."""
    token = await login(client, "test_user_revoke@no-admin.org")
    response = await client.post("/v1/admin/vpc/revoke", headers=auth(token))
    assert response.status_code == 403
    assert response.json()["message"] == "Admin access required"


async def test_vpc_revoke_calls_the_registered_hook(
    client: httpx2.AsyncClient, server: Running
) -> None:
    class Credentials:
        revoked = 0

        async def revoke(self) -> None:
            self.revoked += 1

    class Broken:
        async def revoke(self) -> None:
            raise RuntimeError("db down")

    token = await login(client, "vpc@admin.org")
    hook = Credentials()
    server.services.vpc_credentials = hook
    try:
        assert (await client.post("/v1/admin/vpc/revoke", headers=auth(token))).status_code == 204
        assert hook.revoked == 1
        server.services.vpc_credentials = Broken()
        failed = await client.post("/v1/admin/vpc/revoke", headers=auth(token))
        assert failed.status_code == 500
        assert failed.json() == {
            "code": "internal_server_error",
            "message": "Failed to revoke VPC credentials",
        }
    finally:
        server.services.vpc_credentials = None


async def test_user_activity_lists_logins(client: httpx2.AsyncClient, server: Running) -> None:
    admin = await login(client, "activity@admin.org")
    user_id = uuid.uuid4()
    db = server.services.db
    await db.execute(
        "INSERT INTO users (id, email) VALUES ($1, $2)", user_id, f"{user_id.hex}@example.com"
    )
    svc = server.services
    svc.activity.record(user_id, "signup", auth_method="google")
    svc.activity.record(user_id, "login", auth_method="github")
    svc.activity.record(user_id, "conversation", metadata={"conversation_id": "conv_1"})
    await svc.activity.flush()
    response = await client.get(f"/v1/admin/users/{user_id}/activity", headers=auth(admin))
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == str(user_id) and (body["limit"], body["offset"]) == (20, 0)
    kinds = [(a["activity_type"], a["auth_method"]) for a in body["activities"]]
    assert kinds == [("conversation", None), ("login", "github"), ("signup", "google")]
    first = body["activities"][0]
    assert set(first) == {"id", "user_id", "activity_type", "auth_method", "metadata", "created_at"}
    assert first["metadata"] == {"conversation_id": "conv_1"} and TS_Z.match(first["created_at"])
    assert body["activities"][1]["metadata"] is None
    page = await client.get(
        f"/v1/admin/users/{user_id}/activity?limit=1&offset=1", headers=auth(admin)
    )
    assert [a["activity_type"] for a in page.json()["activities"]] == ["login"]
    big = await client.get(f"/v1/admin/users/{user_id}/activity?limit=1000", headers=auth(admin))
    assert big.status_code == 200 and len(big.json()["activities"]) == 3


async def test_user_activity_bad_input(client: httpx2.AsyncClient) -> None:
    admin = await login(client, "activity-bad@admin.org")
    unknown = await client.get(f"/v1/admin/users/{uuid.uuid4()}/activity", headers=auth(admin))
    assert unknown.status_code == 200 and unknown.json()["activities"] == []
    bad = await client.get("/v1/admin/users/not-a-uuid/activity", headers=auth(admin))
    assert bad.status_code == 400 and bad.text.startswith("Invalid URL")
    negative = await client.get(
        f"/v1/admin/users/{uuid.uuid4()}/activity?offset=-1", headers=auth(admin)
    )  # deviation I3: 400 instead of the reference's database error (500)
    assert negative.status_code == 400
    assert negative.json() == {"code": "bad_request", "message": "offset cannot be negative"}
    user = await login(client, "activity-user@no-admin.org")
    denied = await client.get(f"/v1/admin/users/{uuid.uuid4()}/activity", headers=auth(user))
    assert denied.status_code == 403


async def test_scenario_37_patch_then_read_configs(client: httpx2.AsyncClient) -> None:
    """Scenario 37: admin PATCH default_model → 2xx with it; GET /v1/configs reflects it."""
    token = await login(client, "test_admin_configs@admin.org")
    response = await client.patch(
        "/v1/admin/configs", json={"default_model": "test-default-model-1"}, headers=auth(token)
    )
    assert response.status_code == 200
    assert response.json() == {"default_model": "test-default-model-1"}
    read = await client.get("/v1/configs", headers=auth(token))
    assert read.status_code == 200 and read.json() == {"default_model": "test-default-model-1"}


async def test_scenario_38_second_patch_wins(client: httpx2.AsyncClient) -> None:
    """Scenario 38: PATCH initial-model then updated-model → updated-model everywhere."""
    token = await login(client, "test_admin_configs_update@admin.org")
    await client.patch(
        "/v1/admin/configs", json={"default_model": "initial-model"}, headers=auth(token)
    )
    second = await client.patch(
        "/v1/admin/configs", json={"default_model": "updated-model"}, headers=auth(token)
    )
    assert second.json()["default_model"] == "updated-model"
    read = await client.get("/v1/configs", headers=auth(token))
    assert read.json()["default_model"] == "updated-model"
    # null or absent keeps the stored model (it cannot be cleared)
    kept = await client.patch(
        "/v1/admin/configs", json={"default_model": None}, headers=auth(token)
    )
    assert kept.json() == {"default_model": "updated-model"}
    assert (await client.patch("/v1/admin/configs", json={}, headers=auth(token))).json() == {
        "default_model": "updated-model"
    }


async def test_configs_patch_creates_row(client: httpx2.AsyncClient, server: Running) -> None:
    await server.services.db.execute("DELETE FROM system_configs WHERE key = 'config'")
    token = await login(client, "configs-create@admin.org")
    created = await client.patch("/v1/admin/configs", json={}, headers=auth(token))
    assert created.status_code == 200 and created.json() == {}
    assert (await client.get("/v1/configs", headers=auth(token))).json() == {}


async def test_scenario_41_non_admin_cannot_patch_configs(client: httpx2.AsyncClient) -> None:
    """Scenario 41: non-admin PATCH /v1/admin/configs → 403 Admin access required."""
    token = await login(client, "test_user_configs@no-admin.org")
    response = await client.patch(
        "/v1/admin/configs", json={"default_model": "test-model"}, headers=auth(token)
    )
    assert response.status_code == 403
    assert response.json()["message"] == "Admin access required"


async def test_configs_patch_bad_input(client: httpx2.AsyncClient) -> None:
    token = await login(client, "configs-bad@admin.org")
    for kwargs, status in (
        ({"json": {"default_model": 5}}, 422),
        ({"json": ["x"]}, 422),
        ({"content": b"{", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"{}"}, 415),
    ):
        headers = {**auth(token), **kwargs.pop("headers", {})}
        response = await client.patch("/v1/admin/configs", headers=headers, **kwargs)
        assert response.status_code == status, kwargs
        assert response.headers["content-type"].startswith("text/plain")


async def test_configs_patch_checks_the_model_upstream_outside_dev(
    nursery: trio.Nursery, server: Running
) -> None:
    """Outside DEV the default model must exist upstream (§2.10.7 step 1, as §2.10.4 step 2)."""
    seen: list[str] = []

    async def upstream_handler(request: FakeRequest) -> Reply:
        seen.append(request.path)
        if request.path.endswith("/model/org/known"):
            return Reply.json({"id": "org/known"})
        if request.path.endswith("/model/broken"):
            return Reply.json({"error": "boom"}, 500)
        return Reply.json({"error": "not found"}, 404)

    base = await nursery.start(serve_handler, upstream_handler)
    config = replace(server.services.config, dev=False, openai_base_url=f"{base}/v1")
    upstream = Upstream.from_config(config)
    svc = replace(server.services, config=config, upstream=upstream)
    url = await serve_services(nursery, svc)
    async with httpx2.AsyncClient(base_url=server.url) as dev_client:
        token = await login(dev_client, "prod@admin.org")
    try:
        async with httpx2.AsyncClient(base_url=url) as client:
            h = auth(token)
            ok = await client.patch(
                "/v1/admin/configs", json={"default_model": "org/known"}, headers=h
            )
            assert ok.status_code == 200 and ok.json() == {"default_model": "org/known"}
            missing = await client.patch(
                "/v1/admin/configs", json={"default_model": "nope"}, headers=h
            )
            assert missing.status_code == 400
            assert missing.json()["message"] == "Model 'nope' does not exist in proxy service"
            broken = await client.patch(
                "/v1/admin/configs", json={"default_model": "broken"}, headers=h
            )
            assert broken.status_code == 500
            assert broken.json()["message"] == "Failed to verify model 'broken' with proxy"
            read = await client.get("/v1/configs", headers=h)
            assert read.json() == {"default_model": "org/known"}  # failed checks wrote nothing
    finally:
        await upstream.aclose()
    assert seen == ["/v1/model/org/known", "/v1/model/nope", "/v1/model/broken"]
