"""VPC mode: the upstream key from an HMAC-signed login, cached in app_config, revocable."""

from __future__ import annotations

import httpx2
import pytest
import trio

from privchat.config import ConfigError
from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud
from privchat.devtools.fake_cloud.signing import vpc_signature
from privchat.upstream.vpc import VpcLoginError, credentials_from, signature

from .conftest import auth, login, start_server

SECRET = "vpc-shared-secret"


def test_signature_is_hmac_of_the_decimal_timestamp() -> None:
    assert signature(SECRET, 1_767_225_600) == vpc_signature(SECRET.encode(), 1_767_225_600)


def test_login_answer_needs_every_field() -> None:
    good = {
        "api_key": "sk-1",
        "access_token": "a",
        "refresh_token": "r",
        "organization": {"id": "o"},
    }
    assert credentials_from(good) == ("sk-1", "o")
    for broken in ({**good, "api_key": None}, {**good, "organization": {}}, [], None):
        with pytest.raises(VpcLoginError):
            credentials_from(broken)


def _logins(fake: FakeCloud) -> int:
    return len(fake.requests_to("/v1/auth/vpc/login"))


def _upstream_key(fake: FakeCloud) -> bytes:
    return [r for r in fake.requests if r.path == "/v1/model/list"][-1].header("authorization")


async def test_vpc_key_lifecycle(nursery: trio.Nursery, config) -> None:  # noqa: ANN001
    fake = FakeCloud(api_key="sk-static-unused", vpc_secret=SECRET.encode())
    base_url = await nursery.start(serve_fake_cloud, fake)
    vpc = {"openai_base_url": base_url, "openai_api_key": "", "vpc_shared_secret": SECRET}

    first = await start_server(nursery, config, **vpc)
    db = first.services.db
    await db.execute("DELETE FROM app_config")
    await db.execute("INSERT INTO app_config (key, value) VALUES ('vpc_refresh_token', 'old')")
    # The first server resolved its key at startup, before the rows were cleared; a new one
    # finds no stored key, deletes the legacy row, and logs in.
    before = _logins(fake)
    server = await start_server(nursery, config, **vpc)
    assert _logins(fake) == before + 1
    rows = {r["key"]: r["value"] for r in await db.fetch("SELECT key, value FROM app_config")}
    assert set(rows) == {"vpc_api_key", "vpc_organization_id"}
    key = rows["vpc_api_key"]
    assert key in fake.api_keys

    async with httpx2.AsyncClient(base_url=server.url) as client:
        user = await login(client, "vpc-user@example.com")
        assert (await client.get("/v1/model/list", headers=auth(user))).status_code == 200
        assert _upstream_key(fake) == f"Bearer {key}".encode()

        # Another replica starting now takes the stored key: no second login.
        logins = _logins(fake)
        await start_server(nursery, config, **vpc)
        assert _logins(fake) == logins

        # Revoke: rows gone, and the next upstream call of this process logs in again.
        admin = await login(client, "vpc-admin@admin.org")
        assert (await client.post("/v1/admin/vpc/revoke", headers=auth(admin))).status_code == 204
        assert await db.fetchval("SELECT count(*) FROM app_config") == 0
        assert (await client.get("/v1/model/list", headers=auth(user))).status_code == 200
        assert _logins(fake) == logins + 1
        new_key = await db.fetchval("SELECT value FROM app_config WHERE key = 'vpc_api_key'")
        assert new_key != key and _upstream_key(fake) == f"Bearer {new_key}".encode()


async def test_wrong_secret_stops_startup(nursery: trio.Nursery, config) -> None:  # noqa: ANN001
    fake = FakeCloud(api_key="sk-x", vpc_secret=b"the-real-secret")
    base_url = await nursery.start(serve_fake_cloud, fake)
    first = await start_server(nursery, config)
    await first.services.db.execute("DELETE FROM app_config")
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            ConfigError, match="^VPC_SHARED_SECRET_FILE: VPC login answered HTTP 401$"
        ),
        flatten_subgroups=True,
    ):
        await start_server(
            nursery, config, openai_base_url=base_url, vpc_shared_secret="a-wrong-secret"
        )
