"""Admin model settings, api.md §2.10.3-§2.10.5 and scenarios 18-23 of §6."""

from __future__ import annotations

from tests.conftest import ADMIN_DOMAIN, auth, login
from tests.proxyfixtures import Proxy, proxy

__all__ = ["proxy"]


async def _admin(p: Proxy) -> dict[str, str]:
    import uuid

    return auth(await login(p.client, f"admin-{uuid.uuid4().hex[:8]}@{ADMIN_DOMAIN}"))


async def test_scenario_18_list_shape(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    r = await proxy.client.get("/v1/admin/models?limit=10&offset=0", headers=admin)
    assert r.status_code == 200
    data = r.json()
    assert set(data) == {"models", "limit", "offset", "total"}
    assert len(data["models"]) <= data["total"] and len(data["models"]) <= 10


async def test_scenario_19_upsert_and_list(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    r = await proxy.client.patch(
        "/v1/admin/models",
        json={"test-model-batch-update-and-list": {"public": True}},
        headers=admin,
    )
    assert r.status_code == 200
    assert r.json() == [
        {"model_id": "test-model-batch-update-and-list", "settings": {"public": True}}
    ]
    listed = (await proxy.client.get("/v1/admin/models?limit=100&offset=0", headers=admin)).json()
    [entry] = [m for m in listed["models"] if m["model_id"] == "test-model-batch-update-and-list"]
    assert entry["settings"]["public"] is True


async def test_scenarios_20_23_non_admin_forbidden(proxy: Proxy) -> None:
    user = auth(await login(proxy.client, "test_user_model@no-admin.org"))
    r = await proxy.client.get("/v1/admin/models?limit=10&offset=0", headers=user)
    assert r.status_code == 403 and r.json()["message"] == "Admin access required"  # 20
    r = await proxy.client.delete("/v1/admin/models/test-model-delete-requires-admin", headers=user)
    assert r.status_code == 403 and r.json()["message"] == "Admin access required"  # 23


async def test_scenarios_21_22_delete(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    r = await proxy.client.patch(
        "/v1/admin/models", json={"test-model-delete-1": {}}, headers=admin
    )
    assert r.status_code == 200
    r = await proxy.client.delete("/v1/admin/models/test-model-delete-1", headers=admin)
    assert r.status_code == 204 and r.content == b""
    listed = (await proxy.client.get("/v1/admin/models?limit=10&offset=0", headers=admin)).json()
    assert "test-model-delete-1" not in [m["model_id"] for m in listed["models"]]  # 21
    r = await proxy.client.delete("/v1/admin/models/non-existent-model", headers=admin)
    assert r.status_code == 404
    assert r.json() == {"code": "not_found", "message": "Model not found"}  # 22


async def test_merge_validation_and_pagination(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    r = await proxy.client.patch(
        "/v1/admin/models",
        json={"m-merge": {"public": False, "system_prompt": "Be brief."}},
        headers=admin,
    )
    assert r.json() == [
        {"model_id": "m-merge", "settings": {"public": False, "system_prompt": "Be brief."}}
    ]
    # null / absent keep the old values (a prompt cannot be cleared)
    r = await proxy.client.patch(
        "/v1/admin/models", json={"m-merge": {"public": True, "system_prompt": None}}, headers=admin
    )
    assert r.json() == [
        {"model_id": "m-merge", "settings": {"public": True, "system_prompt": "Be brief."}}
    ]
    r = await proxy.client.patch("/v1/admin/models", json={}, headers=admin)
    assert r.status_code == 400 and r.json()["message"] == "At least one model must be provided"
    r = await proxy.client.patch("/v1/admin/models", json={"  ": {}}, headers=admin)
    assert r.status_code == 400 and r.json()["message"] == "model_id cannot be empty"
    r = await proxy.client.patch(
        "/v1/admin/models", json={"big": {"system_prompt": "x" * 65_537}}, headers=admin
    )
    assert r.status_code == 400
    assert (
        r.json()["message"] == "System prompt for model 'big' exceeds maximum length of 65536 bytes"
    )
    r = await proxy.client.patch("/v1/admin/models", json={"m": {"public": "yes"}}, headers=admin)
    assert r.status_code == 422
    r = await proxy.client.delete("/v1/admin/models/%20", headers=admin)
    assert r.status_code == 400 and r.json()["message"] == "model_id cannot be empty"
    for query, message in (
        ("limit=0", "limit is less than minimum value of 1"),
        ("limit=101", "limit exceeds maximum value of 100"),
        ("offset=-1", "offset cannot be negative"),
    ):
        r = await proxy.client.get(f"/v1/admin/models?{query}", headers=admin)
        assert r.status_code == 400 and r.json()["message"] == message
    r = await proxy.client.get("/v1/admin/models?limit=abc", headers=admin)
    assert r.status_code == 400
    total = (await proxy.client.get("/v1/admin/models?limit=1&offset=100000", headers=admin)).json()
    assert total["models"] == [] and total["total"] >= 1


async def test_upstream_existence_check_outside_dev(nursery, config) -> None:  # noqa: ANN001
    """DEV=false: every id is checked upstream first (404 → 400)."""
    import httpx2

    from privchat.auth import sessions
    from privchat.store import users
    from tests.conftest import start_server
    from tests.fakes.dstack_agent import FakeDstackAgent, serve_fake_dstack_agent
    from tests.proxyfixtures import API_KEY, start_fake

    _, base = await start_fake(nursery)
    dstack = await nursery.start(serve_fake_dstack_agent, FakeDstackAgent())
    server = await start_server(
        nursery,
        config,
        openai_base_url=base,
        openai_api_key=API_KEY,
        dev=False,
        dstack_simulator_endpoint=dstack,
    )
    # Without DEV there is no mock-login: make the admin's session through the store.
    db = server.services.db
    user = await users.create(db, f"root-{id(server)}@{ADMIN_DOMAIN}", "Root", None)
    assert user is not None
    session = await sessions.create(db, user.id)
    async with httpx2.AsyncClient(base_url=server.url) as client:
        headers = auth(session.token)
        r = await client.patch(
            "/v1/admin/models", json={"no-such-model": {"public": True}}, headers=headers
        )
        assert r.status_code == 400
        assert r.json()["message"] == "Model 'no-such-model' does not exist in proxy service"
        r = await client.patch(
            "/v1/admin/models", json={"privchat-dev/echo": {"public": True}}, headers=headers
        )
        assert r.status_code == 200
