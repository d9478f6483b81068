"""POST /v1/responses: model settings, bans, NEAR balance gating, D5, bad input and faults
(api.md §2.7 and scenarios 24-31 of §6), and the official openai SDK through privchat."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx2
import openai
import trio

from privchat.store import bans
from tests.conftest import ADMIN_DOMAIN, auth, login, start_server
from tests.fakecloud_fixtures import parse_sse
from tests.fakes.near_rpc import FakeNearRpc, serve_fake_near_rpc
from tests.proxyfixtures import API_KEY, JSON, Proxy, body, proxy, start_fake

__all__ = ["proxy"]

ONE_NEAR = 10**24


async def _admin(p: Proxy) -> dict[str, str]:
    return auth(await login(p.client, f"admin-{uuid.uuid4().hex[:8]}@{ADMIN_DOMAIN}"))


async def _set(p: Proxy, admin: dict[str, str], model: str, settings: dict) -> None:  # type: ignore[type-arg]
    r = await p.client.patch("/v1/admin/models", json={model: settings}, headers=admin)
    assert r.status_code == 200, r.text


async def _reset(p: Proxy, admin: dict[str, str], model: str = "privchat-dev/echo") -> None:
    """The DB is shared by the whole run: leave no settings behind for the echo model."""
    await p.client.delete(f"/v1/admin/models/{model}", headers=admin)


def _plain(model: str, **extra: object) -> dict:  # type: ignore[type-arg]
    return {"model": model, "input": "Hello", **extra}


async def test_scenario_24_non_public_model_403(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    await _set(proxy, admin, "test-non-public-model", {"public": False})
    r = await proxy.client.post(
        "/v1/responses", json=_plain("test-non-public-model"), headers=admin
    )
    assert r.status_code == 403 and r.json() == {"error": "This model is not available"}
    assert proxy.fake.requests_to("/v1/responses") == []


async def test_scenario_25_public_model_passes(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    await _set(proxy, admin, "test-public-model", {"public": True})
    r = await proxy.client.post("/v1/responses", json=_plain("test-public-model"), headers=admin)
    assert r.status_code != 403
    assert r.headers["x-nearai-model-settings-cache"] == "miss"
    assert "x-nearai-model-system-prompt-sha256" not in r.headers


async def test_scenarios_26_27_system_prompt_injected(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    prompt = "You are a terse assistant."
    await _set(proxy, admin, "privchat-dev/echo", {"public": True, "system_prompt": prompt})
    try:
        await _prompted(proxy, prompt)
    finally:
        await _reset(proxy, admin)


async def _prompted(proxy: Proxy, prompt: str) -> None:
    user = await proxy.headers()
    r = await proxy.client.post("/v1/responses", json=_plain("privchat-dev/echo"), headers=user)
    assert r.status_code == 200  # 26
    assert (
        r.headers["x-nearai-model-system-prompt-sha256"]
        == hashlib.sha256(prompt.encode()).hexdigest()
    )
    sent = json.loads(proxy.fake.requests_to("/v1/responses")[-1].body)
    assert sent["instructions"] == prompt
    other = await proxy.headers()
    r = await proxy.client.post(
        "/v1/responses",
        json=_plain("privchat-dev/echo", instructions="User provided instructions."),
        headers=other,
    )
    assert r.status_code == 200  # 27
    assert r.headers["x-nearai-model-settings-cache"] == "hit"
    sent = json.loads(proxy.fake.requests_to("/v1/responses")[-1].body)
    assert sent["instructions"] == f"{prompt}\n\nUser provided instructions."
    # Empty string instructions are replaced by the prompt alone.
    third = await proxy.headers()
    await proxy.client.post(
        "/v1/responses", json=_plain("privchat-dev/echo", instructions=""), headers=third
    )
    assert json.loads(proxy.fake.requests_to("/v1/responses")[-1].body)["instructions"] == prompt


async def test_body_unchanged_without_prompt_and_cache_invalidated(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    await _reset(proxy, admin)
    raw = b'{"model":"privchat-dev/echo",  "input":"Hi", "instructions": "keep me"}'
    r = await proxy.client.post("/v1/responses", content=raw, headers={**JSON, **admin})
    assert r.status_code == 200 and proxy.fake.requests_to("/v1/responses")[-1].body == raw
    assert r.headers["x-nearai-model-settings-cache"] == "miss"
    # Admin writes invalidate the cache entry at once (this process).
    await _set(proxy, admin, "privchat-dev/echo", {"public": False})
    user = await proxy.headers()
    r = await proxy.client.post("/v1/responses", content=raw, headers={**JSON, **user})
    await _reset(proxy, admin)
    assert r.status_code == 403


async def test_scenario_28_no_model_and_bad_bodies_go_upstream(proxy: Proxy) -> None:
    for raw in (b'{"input":"Hello"}', b"not json at all", b"", b'{"model": 5}'):
        headers = await proxy.headers()
        r = await proxy.client.post("/v1/responses", content=raw, headers={**JSON, **headers})
        assert r.status_code == 400, (raw, r.status_code)  # 28: not 403; upstream's 400
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "x-nearai-model-settings-cache" not in r.headers
        assert proxy.fake.requests_to("/v1/responses")[-1].body == raw


async def test_unknown_model_relays_upstream_error(proxy: Proxy) -> None:
    headers = await proxy.headers()
    r = await proxy.client.post("/v1/responses", json=_plain("no-such/model"), headers=headers)
    assert r.status_code == 404 or r.status_code == 400, r.status_code
    assert "error" in r.json()


async def test_d5_foreign_or_unknown_conversation_404_before_upstream(proxy: Proxy) -> None:
    owner_token, owner_id = await proxy.user()
    conversation = await proxy.own_conversation(owner_id)
    intruder = await proxy.headers()
    for ref in (conversation, {"id": conversation}, "conv_" + "0" * 32, {"id": "conv_nope"}):
        r = await proxy.client.post(
            "/v1/responses", content=body(conversation=ref), headers={**JSON, **intruder}
        )
        assert r.status_code == 404 and r.json() == {"error": "Conversation not found"}, ref
        await trio.sleep(1.01)  # wait out the 1 s rate-limit window (not synchronisation)
    assert proxy.fake.requests_to("/v1/responses") == []
    # The owner may use it, as a string or as an object.
    r = await proxy.client.post(
        "/v1/responses",
        content=body(conversation={"id": conversation}),
        headers={**JSON, **auth(owner_token)},
    )
    assert r.status_code == 200
    events = parse_sse(r.content)
    assert events[-1][0] in ("response.completed", "conversation.title.updated")


async def test_ban_403_and_activity_row(proxy: Proxy) -> None:
    token, user_id = await proxy.user()
    r = await proxy.client.post(
        "/v1/responses", json=_plain("privchat-dev/echo"), headers=auth(token)
    )
    assert r.status_code == 200
    svc = proxy.server.services
    await svc.activity.flush()
    rows = await svc.db.fetch(
        "SELECT metadata FROM user_activity_log WHERE user_id = $1 AND activity_type = 'response'",
        user_id,
    )
    assert [row["metadata"] for row in rows] == [
        {"model_id": "privchat-dev/echo", "model_settings_cache_hit": False}
    ]
    await bans.create(svc.db, user_id, bans.MANUAL, "test", None)
    await svc.sessions.synced(svc.db)  # the ban reached the session cache
    await trio.sleep(1.01)  # rate-limit window
    r = await proxy.client.post(
        "/v1/responses", json=_plain("privchat-dev/echo"), headers=auth(token)
    )
    assert r.status_code == 403
    assert r.json() == {"error": "Access temporarily restricted. Please try again later."}


async def test_scenarios_29_30_31_near_balance_gating(nursery: trio.Nursery, config) -> None:  # noqa: ANN001
    rpc = FakeNearRpc()
    rpc.add_account("rich.near", 5 * ONE_NEAR)
    rpc.add_account("zero-balance.near", 0)
    rpc_url = await nursery.start(serve_fake_near_rpc, rpc)
    fake, base = await start_fake(nursery)
    server = await start_server(
        nursery, config, openai_base_url=base, openai_api_key=API_KEY, near_rpc_url=rpc_url
    )
    gate = server.services.balance
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:

        async def mock(email: str, provider: str | None) -> dict[str, str]:
            payload = {"email": email, "name": "N"}
            if provider:
                payload["oauth_provider"] = provider
            r = await client.post("/v1/auth/mock-login", json=payload)
            assert r.status_code == 200
            return auth(r.json()["token"])

        plain = await mock(f"no-near-{uuid.uuid4().hex[:6]}@example.com", None)
        rich = await mock("rich.near@near", "near")
        poor = await mock("zero-balance.near@near", "near")
        for headers in (plain, rich, poor):
            r = await client.post(
                "/v1/responses", json=_plain("privchat-dev/echo"), headers=headers
            )
            assert r.status_code != 403  # 29, 30, 31 (first request)
        await gate.settled()
        assert [q["account_id"] for q in rpc.queries("view_account")].count(
            "zero-balance.near"
        ) == 1
        await trio.sleep(1.01)  # rate-limit window, as the scenario's 1.1 s wait
        r = await client.post("/v1/responses", json=_plain("privchat-dev/echo"), headers=poor)
        assert r.status_code == 403
        assert r.json()["error"] == "Access temporarily restricted. Please try again later."
        r = await client.post("/v1/responses", json=_plain("privchat-dev/echo"), headers=rich)
        assert r.status_code == 200
        await gate.settled()
        # The rich account's balance is cached: only one RPC query for it.
        assert [q["account_id"] for q in rpc.queries("view_account")].count("rich.near") == 1
        rows = await server.services.db.fetch(
            "SELECT ban_type, reason, expires_at - created_at AS span FROM user_bans"
            " WHERE reason LIKE 'NEAR balance 0 %'"
        )
        assert rows and rows[-1]["ban_type"] == "near_balance_low"
        assert rows[-1]["reason"] == (
            "NEAR balance 0 is below required minimum 1000000000000000000000000"
        )
    del fake


async def test_half_body_then_stall_is_408(nursery: trio.Nursery, config) -> None:  # noqa: ANN001
    fake, base = await start_fake(nursery)
    server = await start_server(
        nursery, config, openai_base_url=base, openai_api_key=API_KEY, body_idle_timeout=0.5
    )
    async with httpx2.AsyncClient(base_url=server.url) as client:
        token = await login(client)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    half = body()[:20]
    await stream.send_all(
        b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(body())}\r\n\r\n".encode()
        + half
    )
    data = b""
    # 0.5 s body timeout; the 408 closes the connection rather than wait for the rest.
    with trio.fail_after(10):
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
    await stream.aclose()
    assert data.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in data.lower()
    assert fake.requests_to("/v1/responses") == []
    # The rate limiter's slot was released.
    assert all(s.in_flight == 0 for s in server.services.ratelimit.users.values())


async def test_model_list_adds_public(proxy: Proxy) -> None:
    admin = await _admin(proxy)
    await _set(proxy, admin, "privchat-dev/echo", {"public": False})
    try:
        await _listed(proxy, admin)
    finally:
        await _reset(proxy, admin)


async def _listed(proxy: Proxy, admin: dict[str, str]) -> None:
    for extra in ({}, {"accept-encoding": "gzip"}, {"accept-encoding": "br"}):
        r = await proxy.client.get("/v1/model/list?limit=50", headers={**admin, **extra})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        models = r.json()["models"]
        assert models and all(isinstance(m["public"], bool) for m in models)
        echo = [m for m in models if m.get("modelId") == "privchat-dev/echo"]
        assert echo and echo[0]["public"] is False  # annotated, not removed
        assert all(m["public"] for m in models if m.get("modelId") != "privchat-dev/echo")
    assert proxy.fake.requests_to("/v1/model/list")[-1].query == b"limit=50"  # D1


async def test_openai_sdk_stream_and_non_stream(proxy: Proxy) -> None:
    token, _ = await proxy.user()
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=token, max_retries=0)

    def run_stream() -> list[object]:
        with client.responses.create(
            model="privchat-dev/echo", input="Say hello", stream=True
        ) as stream:
            return list(stream)

    def run_plain() -> object:
        return client.responses.create(model="privchat-dev/echo", input="Say hello")

    events = await trio.to_thread.run_sync(run_stream)
    from openai.types.responses import ResponseCompletedEvent, ResponseTextDeltaEvent

    assert any(isinstance(e, ResponseTextDeltaEvent) for e in events)
    completed = [e for e in events if isinstance(e, ResponseCompletedEvent)]
    assert completed and completed[0].response.output_text
    await trio.sleep(1.01)  # rate-limit window
    response = await trio.to_thread.run_sync(run_plain)
    assert response.output_text  # type: ignore[attr-defined]
    models = await trio.to_thread.run_sync(lambda: client.get("/model/list", cast_to=object))
    assert all("public" in m for m in models["models"])  # type: ignore[index]
