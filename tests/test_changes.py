"""Cross-replica cache invalidation over PostgreSQL notifications (services/changes.py,
migration 0005): model settings and the VPC key changed through one replica, or in SQL, are
dropped by every other replica; a lost LISTEN connection empties the caches."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx2
import trio

from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud
from privchat.runtime import Running
from privchat.services.changes import ChangeFeed
from privchat.services.model_settings import ModelSettingsCache

from .conftest import ADMIN_DOMAIN, auth, login, start_server
from .proxyfixtures import API_KEY

MODEL = "privchat-dev/echo"
SECRET = "vpc-shared-secret"


async def _feed(server: Running) -> ChangeFeed:
    feed = server.services.changes
    assert feed is not None
    with trio.fail_after(10):
        await feed.wait_listening()
    return feed


def _cache(server: Running) -> ModelSettingsCache:
    cache = server.services.model_settings
    assert cache is not None
    return cache


async def _prompt_seen(client: httpx2.AsyncClient) -> str | None:
    """The system-prompt digest `/v1/responses` reports for MODEL (a fresh user each time:
    one request a second per user)."""
    token = await login(client)
    r = await client.post(
        "/v1/responses", json={"model": MODEL, "input": "Hi"}, headers=auth(token)
    )
    assert r.status_code == 200, r.text
    return r.headers.get("x-nearai-model-system-prompt-sha256")


async def test_a_model_change_through_one_replica_reaches_the_others(
    nursery: trio.Nursery, config: Any
) -> None:
    fake = FakeCloud(api_key=API_KEY)
    upstream = {"openai_base_url": await nursery.start(serve_fake_cloud, fake)}
    a = await start_server(nursery, config, **upstream)
    b = await start_server(nursery, config, **upstream)
    feed_b = await _feed(b)
    await _feed(a)
    async with httpx2.AsyncClient(base_url=a.url) as ca, httpx2.AsyncClient(base_url=b.url) as cb:
        admin = auth(await login(ca, f"admin-{uuid.uuid4().hex[:8]}@{ADMIN_DOMAIN}"))
        try:
            for prompt in ("first prompt", "second prompt"):
                r = await ca.patch(
                    "/v1/admin/models", json={MODEL: {"system_prompt": prompt}}, headers=admin
                )
                assert r.status_code == 200, r.text
                await feed_b.synced(b.services.db)
                assert _cache(b).cached(MODEL) is None  # dropped on b too
                digest = hashlib.sha256(prompt.encode()).hexdigest()
                assert await _prompt_seen(cb) == digest  # read again, then
                assert await _prompt_seen(cb) == digest  # from b's cache
                assert _cache(b).cached(MODEL) is not None
            # A change made in SQL, by hand, reaches every replica as well.
            await a.services.db.execute("DELETE FROM models WHERE model_id = $1", MODEL)
            await feed_b.synced(b.services.db)
            assert _cache(b).cached(MODEL) is None
            assert await _prompt_seen(cb) is None
        finally:
            await ca.delete(f"/v1/admin/models/{MODEL}", headers=admin)


async def test_a_vpc_revoke_through_one_replica_reaches_the_others(
    nursery: trio.Nursery, config: Any
) -> None:
    fake = FakeCloud(api_key="sk-static-unused", vpc_secret=SECRET.encode())
    base_url = await nursery.start(serve_fake_cloud, fake)
    vpc = {"openai_base_url": base_url, "openai_api_key": "", "vpc_shared_secret": SECRET}
    a = await start_server(nursery, config, **vpc)
    b = await start_server(nursery, config, **vpc)
    feed_b = await _feed(b)
    db = a.services.db
    old = await db.fetchval("SELECT value FROM app_config WHERE key = 'vpc_api_key'")

    def last_key() -> bytes:
        return fake.requests_to("/v1/model/list")[-1].header("authorization")

    async with httpx2.AsyncClient(base_url=a.url) as ca, httpx2.AsyncClient(base_url=b.url) as cb:
        user = auth(await login(cb))
        assert (await cb.get("/v1/model/list", headers=user)).status_code == 200
        assert last_key() == f"Bearer {old}".encode()
        admin = auth(await login(ca, f"vpc-admin@{ADMIN_DOMAIN}"))
        assert (await ca.post("/v1/admin/vpc/revoke", headers=admin)).status_code == 204
        await feed_b.synced(b.services.db)
        assert (await cb.get("/v1/model/list", headers=user)).status_code == 200
        new = await db.fetchval("SELECT value FROM app_config WHERE key = 'vpc_api_key'")
        assert new is not None and new != old
        assert last_key() == f"Bearer {new}".encode()  # b logged in again: the revoked key is gone


async def test_losing_the_listen_connection_empties_the_caches_and_listens_again(
    nursery: trio.Nursery, config: Any
) -> None:
    fake = FakeCloud(api_key=API_KEY)
    server = await start_server(
        nursery, config, openai_base_url=await nursery.start(serve_fake_cloud, fake)
    )
    feed = await _feed(server)
    db = server.services.db

    async def listener_pid() -> int | None:
        return await db.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
            " AND datname = current_database()",
            "privchat listen privchat_changes",
        )

    async with httpx2.AsyncClient(base_url=server.url) as client:
        await _prompt_seen(client)
        assert _cache(server).cached(MODEL) is not None
        before = await listener_pid()
        assert await db.fetchval("SELECT pg_terminate_backend($1)", before)
        with trio.fail_after(10):
            while feed.listening:  # noqa: ASYNC110
                await trio.sleep(0.01)  # no event for "the server ended that connection"
        assert _cache(server).cached(MODEL) is None  # bypassed: changes may be missed now
        with trio.fail_after(10):  # listened again (after the supervisor's backoff)
            await feed.wait_listening()
        assert await listener_pid() not in (before, None)
        assert not _cache(server)._entries  # emptied: notifications may have been missed
        await _prompt_seen(client)
        assert _cache(server).cached(MODEL) is not None


def test_an_unknown_payload_resets_every_subscriber() -> None:
    feed = ChangeFeed()
    seen: list[str] = []
    feed.subscribe("model", seen.append, lambda: seen.append("reset"))
    feed._notified("model:m1")
    feed._notified("other:x")
    feed._notified("model:")
    assert seen == ["m1", "reset", ""]
