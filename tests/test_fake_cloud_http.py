"""The fake's JSON routes: auth, headers, errors, conversations, files, models, attestation,
VPC login, compression."""

from __future__ import annotations

import gzip
import json
import time
import uuid

import brotli
import httpx2
import pytest
import trio

from privchat.devtools.fake_cloud.signing import vpc_signature
from tests.fakecloud_fixtures import cloud_client_for, start_fake_cloud


@pytest.fixture
async def fake_cloud(nursery):
    return await start_fake_cloud(nursery)


@pytest.fixture
async def cloud_client(fake_cloud):
    async with cloud_client_for(fake_cloud[1]) as client:
        yield client


async def test_auth_envelopes(fake_cloud) -> None:
    _, base_url = fake_cloud
    async with httpx2.AsyncClient(base_url=base_url) as anon:
        missing = await anon.get("/files")
        wrong_scheme = await anon.get("/files", headers={"authorization": "bearer sk-test"})
        wrong_key = await anon.get("/files", headers={"authorization": "Bearer sk-nope"})
        public = await anon.get("/model/list")
    assert [r.status_code for r in (missing, wrong_scheme, wrong_key)] == [401, 401, 401]
    assert missing.json() == {
        "error": {
            "message": "Missing authorization header",
            "type": "missing_auth_header",
            "param": None,
            "code": None,
        }
    }
    assert wrong_scheme.json()["error"]["type"] == "invalid_auth_header"
    assert wrong_key.json()["error"]["message"] == "Invalid or expired API key"
    assert public.status_code == 200


async def test_common_headers_and_unknown_routes(cloud_client) -> None:
    rid = str(uuid.uuid4())
    r = await cloud_client.get("/model/list", headers={"x-request-id": rid})
    assert r.headers["x-request-id"] == rid and r.headers["cache-control"] == "no-store"
    r = await cloud_client.get("/model/list", headers={"x-request-id": "not-a-uuid"})
    assert uuid.UUID(r.headers["x-request-id"])
    r = await cloud_client.get("/nothing/here")
    assert r.status_code == 404 and r.headers["x-should-retry"] == "false"
    assert r.json()["error"]["message"] == "Not found"
    r = await cloud_client.put("/conversations")
    assert r.status_code == 405 and r.headers["x-should-retry"] == "false"
    r = await cloud_client.get("/responses/resp_x")
    assert r.status_code == 501 and r.json()["error"]["type"] == "not_implemented"


async def test_jan_2026_profile_drift(cloud_client) -> None:
    headers = {"x-fake-profile": "jan-2026", "accept-encoding": "gzip"}
    r = await cloud_client.get("/model/list", headers=headers)
    assert "x-request-id" not in r.headers and "content-encoding" not in r.headers
    r = await cloud_client.get("/nothing", headers=headers)
    assert r.status_code == 404 and r.content == b""


async def test_conversation_lifecycle(cloud_client) -> None:
    created = await cloud_client.post("/conversations", json={"metadata": {"topic": "x", "n": 1}})
    assert created.status_code == 201
    conv = created.json()
    assert conv["object"] == "conversation" and conv["id"].startswith("conv_")
    assert len(conv["id"]) == 37 and conv["metadata"] == {"topic": "x", "n": 1}
    cid = conv["id"]
    bare = str(uuid.UUID(hex=cid[5:]))
    assert (await cloud_client.get(f"/conversations/{bare}")).json()["id"] == cid
    updated = await cloud_client.post(f"/conversations/{cid}", json={"metadata": {"other": True}})
    assert updated.status_code == 200 and updated.json()["metadata"] == {"other": True}
    pinned = (await cloud_client.post(f"/conversations/{cid}/pin")).json()
    assert isinstance(pinned["metadata"]["pinned_at"], int)
    assert (
        "pinned_at"
        not in (await cloud_client.delete(f"/conversations/{cid}/pin")).json()["metadata"]
    )
    archived = (await cloud_client.post(f"/conversations/{cid}/archive")).json()
    assert "archived_at" in archived["metadata"]
    assert (
        "archived_at"
        not in (await cloud_client.delete(f"/conversations/{cid}/archive")).json()["metadata"]
    )
    clone = await cloud_client.post(f"/conversations/{cid}/clone")
    assert clone.status_code == 201 and clone.json()["metadata"]["cloned_from_id"] == cid
    deleted = await cloud_client.delete(f"/conversations/{bare}")
    assert deleted.json() == {"id": bare, "object": "conversation.deleted", "deleted": True}
    gone = await cloud_client.get(f"/conversations/{cid}")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "not_found_error"
    assert (await cloud_client.get("/conversations/garbage")).status_code == 400


async def test_conversation_metadata_rules_and_plain_text_rejections(cloud_client) -> None:
    many = {f"k{i}": {"nested": [i]} for i in range(40)}
    assert (await cloud_client.post("/conversations", json={"metadata": many})).status_code == 201
    big = {"x": "a" * 17000}
    r = await cloud_client.post("/conversations", json={"metadata": big})
    assert r.status_code == 400 and "too large" in r.json()["error"]["message"]
    r = await cloud_client.post("/conversations", content=b"{}")
    assert r.status_code == 415 and r.headers["content-type"].startswith("text/plain")
    r = await cloud_client.post(
        "/conversations", content=b"{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/plain")
    r = await cloud_client.post("/conversations", json=[1])
    assert r.status_code == 422


async def test_batch_handles_1000_ids_fast(fake_cloud, cloud_client) -> None:
    fake, _ = fake_cloud
    ids = [(await cloud_client.post("/conversations", json={})).json()["id"] for _ in range(5)]
    unknown = "conv_" + "f" * 32
    await cloud_client.delete(f"/conversations/{ids[1]}")
    bare = ids[2][5:]
    r = await cloud_client.post(
        "/conversations/batch", json={"ids": [ids[0], unknown, ids[1], bare]}
    )
    body = r.json()
    assert r.status_code == 200 and body["object"] == "list"
    assert [c["id"] for c in body["data"]] == [ids[0], ids[2]]
    assert body["missing_ids"] == [unknown, ids[1]]
    assert (await cloud_client.post("/conversations/batch", json={"ids": []})).status_code == 400
    too_many = {"ids": [ids[0]] * 1001}
    assert (await cloud_client.post("/conversations/batch", json=too_many)).status_code == 400
    assert (
        await cloud_client.post("/conversations/batch", json={"ids": ["nope"]})
    ).status_code == 400
    from privchat.devtools.fake_cloud.store import Conversation

    for n in range(1000):
        core = f"{n:032x}"
        fake.store.conversations[core] = Conversation(core=core, created_at=n)
    thousand = [f"conv_{n:032x}" for n in range(1000)]
    start = trio.current_time()
    r = await cloud_client.post("/conversations/batch", json={"ids": thousand})
    assert trio.current_time() - start < 1.0
    assert len(r.json()["data"]) == 1000 and r.json()["missing_ids"] == []


async def test_items_create_and_paginate(cloud_client) -> None:
    cid = (await cloud_client.post("/conversations", json={})).json()["id"]
    items = [{"type": "message", "role": "user", "content": f"  m{i}  "} for i in range(5)]
    r = await cloud_client.post(f"/conversations/{cid}/items", json={"items": items})
    created = r.json()
    assert r.status_code == 200 and created["has_more"] is False
    assert created["data"][0]["content"] == [{"type": "input_text", "text": "m0"}]
    assert created["data"][0]["id"].startswith("msg_")
    page = (await cloud_client.get(f"/conversations/{cid}/items", params={"limit": 2})).json()
    assert [i["content"][0]["text"] for i in page["data"]] == ["m0", "m1"] and page["has_more"]
    nxt = await cloud_client.get(
        f"/conversations/{cid}/items",
        params={"limit": 2, "after": page["last_id"], "order": "desc"},
    )
    assert [i["content"][0]["text"] for i in nxt.json()["data"]] == ["m2", "m3"]
    for bad, message in (("0", "Limit must be positive"), ("1001", "Limit cannot exceed 1000")):
        r = await cloud_client.get(f"/conversations/{cid}/items", params={"limit": bad})
        assert r.status_code == 400 and r.json()["error"]["message"] == message
        assert r.json()["error"]["type"] == "invalid_parameter"
    r = await cloud_client.get(f"/conversations/{cid}/items", params={"after": "msg_elsewhere"})
    assert r.status_code == 400
    empty_cid = (await cloud_client.post("/conversations", json={})).json()["id"]
    empty = (await cloud_client.get(f"/conversations/{empty_cid}/items")).json()
    assert empty == {"object": "list", "data": [], "first_id": "", "last_id": "", "has_more": False}
    r = await cloud_client.post(
        f"/conversations/{cid}/items", json={"items": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 400
    r = await cloud_client.post(f"/conversations/{cid}/items", json={"items": items * 5})
    assert r.status_code == 400


async def test_files_roundtrip(fake_cloud, cloud_client) -> None:
    fake, _ = fake_cloud
    payload = "héllo, files\n".encode()
    r = await cloud_client.post(
        "/files",
        files={"file": ("notes.txt", payload, "text/plain")},
        data={
            "purpose": "user_data",
            "expires_after[anchor]": "created_at",
            "expires_after[seconds]": "60",
        },
    )
    assert r.status_code == 201
    obj = r.json()
    assert obj["id"].startswith("file-") and len(obj["id"]) == 41
    assert obj["bytes"] == len(payload) and obj["expires_at"] == obj["created_at"] + 60
    assert list(obj) == ["id", "object", "bytes", "created_at", "expires_at", "filename", "purpose"]
    upload = fake.requests_to("/v1/files", "POST")[-1]
    assert b"boundary=" in upload.header("content-type") and payload in upload.body
    content = await cloud_client.get(f"/files/{obj['id']}/content")
    assert content.content == payload and content.headers["content-type"] == "text/plain"
    assert content.headers["content-disposition"] == 'attachment; filename="notes.txt"'
    assert (await cloud_client.get(f"/files/{obj['id'][5:]}")).json() == obj
    listed = (await cloud_client.get("/files")).json()
    assert listed["data"] == [obj] and listed["first_id"] == obj["id"]
    assert (await cloud_client.delete(f"/files/{obj['id']}")).json() == {
        "id": obj["id"],
        "object": "file",
        "deleted": True,
    }
    assert (await cloud_client.get(f"/files/{obj['id']}")).status_code == 404
    assert (await cloud_client.get("/files")).json() == {
        "object": "list",
        "data": [],
        "has_more": False,
    }
    assert (await cloud_client.get("/files/nope")).status_code == 400
    bad_purpose = await cloud_client.post(
        "/files", files={"file": ("a.txt", b"x", "text/plain")}, data={"purpose": "x"}
    )
    assert bad_purpose.status_code == 400
    image = await cloud_client.post(
        "/files", files={"file": ("a.png", b"x", "image/png")}, data={"purpose": "user_data"}
    )
    assert image.status_code == 400
    not_utf8 = await cloud_client.post(
        "/files",
        files={"file": ("a.txt", b"\xff\xfe\xfd", "text/plain")},
        data={"purpose": "user_data"},
    )
    assert not_utf8.status_code == 201  # UTF-16 BOM is accepted
    latin = await cloud_client.post(
        "/files", files={"file": ("a.txt", b"caf\xe9", "text/plain")}, data={"purpose": "user_data"}
    )
    assert latin.status_code == 400


async def test_models(cloud_client) -> None:
    body = (await cloud_client.get("/model/list")).json()
    assert body["limit"] == 100 and body["offset"] == 0 and body["total"] == len(body["models"])
    echo = body["models"][0]
    assert echo["modelId"] == "privchat-dev/echo"
    assert "not an LLM" in echo["metadata"]["modelDescription"]
    assert echo["inputCostPerToken"] == {"amount": 0, "scale": 9, "currency": "USD"}
    assert (await cloud_client.get("/model/list", params={"limit": -1})).status_code == 400
    assert (await cloud_client.get("/model/list", params={"limit": 1, "offset": 1})).json()[
        "models"
    ][0]["modelId"] != "privchat-dev/echo"
    assert (await cloud_client.get("/model/privchat-dev%2Fecho")).json()[
        "modelId"
    ] == "privchat-dev/echo"
    assert (await cloud_client.get("/model/nope")).status_code == 404


async def test_attestation_report_shape(fake_cloud, cloud_client) -> None:
    fake, _ = fake_cloud
    nonce = "ab" * 32
    r = await cloud_client.get(
        "/attestation/report", params={"nonce": nonce, "model": "zai-org/GLM-4.6"}
    )
    body = r.json()
    gw = body["gateway_attestation"]
    assert gw["signing_algo"] == "ed25519" and len(gw["signing_address"]) == 64
    assert gw["request_nonce"] == nonce and gw["report_data"].endswith(nonce)
    assert gw["report_data"].startswith(gw["signing_address"])
    assert isinstance(json.loads(gw["event_log"]), list)
    quote = bytes.fromhex(gw["intel_quote"])
    assert quote[568 : 568 + 64].hex() == gw["report_data"]
    tcb = gw["info"]["tcb_info"]
    for key in (
        "mrtd",
        "rtmr0",
        "rtmr3",
        "os_image_hash",
        "compose_hash",
        "device_id",
        "app_compose",
    ):
        assert key in tcb
    [model] = body["model_attestations"]
    assert isinstance(model["nvidia_payload"], str) and isinstance(model["event_log"], list)
    assert isinstance(model["signing_address"], str) and model["intel_quote"]
    plain = (await cloud_client.get("/attestation/report")).json()
    assert (
        "model_attestations" not in plain
        and len(plain["gateway_attestation"]["request_nonce"]) == 64
    )
    ecdsa = (await cloud_client.get("/attestation/report", params={"signing_algo": "ecdsa"})).json()
    assert ecdsa["gateway_attestation"]["signing_address"].startswith("0x")
    assert (
        await cloud_client.get("/attestation/report", params={"nonce": "zz"})
    ).status_code == 400
    assert (
        await cloud_client.get("/attestation/report", params={"provider": "x"})
    ).status_code == 400
    assert (
        await cloud_client.get("/attestation/report", params={"model": "nope"})
    ).status_code == 503
    fake.attestation_error = (503, "backend down")
    r = await cloud_client.get("/attestation/report")
    assert r.status_code == 503 and r.json()["error"]["type"] == "provider_error"


async def test_vpc_login(fake_cloud) -> None:
    fake, base_url = fake_cloud
    ts = int(time.time())
    good = {
        "timestamp": ts,
        "signature": vpc_signature(fake.vpc_secret, ts),
        "client_id": "privchat",
    }
    async with httpx2.AsyncClient(base_url=base_url) as anon:
        r = await anon.post("/auth/vpc/login", json=good)
        assert r.status_code == 200
        body = r.json()
        assert body["api_key"].startswith("sk-") and body["organization"]["id"]
        assert body["access_token"] and body["refresh_token"]
        minted = await anon.get("/files", headers={"authorization": f"Bearer {body['api_key']}"})
        assert minted.status_code == 200
        stale = dict(good, timestamp=ts - 31, signature=vpc_signature(fake.vpc_secret, ts - 31))
        r = await anon.post("/auth/vpc/login", json=stale)
        assert (r.status_code, r.text) == (401, "Invalid VPC signature")
        r = await anon.post("/auth/vpc/login", json=dict(good, signature="00" * 32))
        assert r.status_code == 401
        r = await anon.post("/auth/vpc/login", json=dict(good, client_id=""))
        assert r.status_code == 400 and r.headers["content-type"].startswith("text/plain")


async def test_compression_of_json_bodies(cloud_client) -> None:
    for encoding, decode in (("gzip", gzip.decompress), ("br", brotli.decompress)):
        async with cloud_client.stream(
            "GET", "/model/list", headers={"accept-encoding": encoding}
        ) as r:
            raw = b"".join([c async for c in r.aiter_raw()])
        assert r.headers["content-encoding"] == encoding and "content-length" not in r.headers
        assert "accept-encoding" in r.headers.get_list("vary")
        assert json.loads(decode(raw))["models"]
    async with cloud_client.stream(
        "GET", "/model/list", headers={"accept-encoding": "identity"}
    ) as r:
        raw = b"".join([c async for c in r.aiter_raw()])
    assert "content-encoding" not in r.headers and int(r.headers["content-length"]) == len(raw)
    r = await cloud_client.get(
        "/model/list", headers={"accept-encoding": "gzip", "x-fake-compress": "0"}
    )
    assert "content-encoding" not in r.headers
    small = await cloud_client.get("/nothing/here", headers={"accept-encoding": "gzip"})
    assert "content-encoding" in small.headers  # the 404 envelope is over 32 bytes
    body = {"model": "privchat-dev/echo", "input": "x", "stream": True}
    async with cloud_client.stream(
        "POST", "/responses", json=body, headers={"accept-encoding": "gzip, br"}
    ) as r:
        raw = b"".join([c async for c in r.aiter_raw()])
    assert "content-encoding" not in r.headers and raw.startswith(b"event: response.created\n")
