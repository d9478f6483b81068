"""/v1/responses streaming against a live fake: framing, write patterns, delays, failures,
disconnects, signatures."""

from __future__ import annotations

import hashlib
import json

import httpx2
import nacl.signing
import pytest
import trio

from privchat.devtools.fake_cloud.signing import recover_eip191_address
from tests.fakecloud_fixtures import (
    AUTH,
    JSON,
    cloud_client_for,
    parse_sse,
    start_fake_cloud,
    stream_body,
)


@pytest.fixture
async def fake_cloud(nursery):
    return await start_fake_cloud(nursery)


@pytest.fixture
async def cloud_client(fake_cloud):
    async with cloud_client_for(fake_cloud[1]) as client:
        yield client


async def _stream(cloud_client: httpx2.AsyncClient, body: bytes, **headers: str):
    """POST a stream; return (response, list of raw chunks as read)."""
    chunks = []
    async with cloud_client.stream(
        "POST", "/responses", content=body, headers={**JSON, **headers}
    ) as response:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
    return response, chunks


async def test_stream_framing_and_recording(fake_cloud, cloud_client) -> None:
    fake, _ = fake_cloud
    body = stream_body(text="Say hello")
    response, chunks = await _stream(cloud_client, body, **{"x-fake-deltas": "5"})
    data = b"".join(chunks)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-store"
    assert "content-length" not in response.headers and "content-encoding" not in response.headers
    assert b"[DONE]" not in data and b"\nid:" not in data and b"retry:" not in data
    events = parse_sse(data)
    assert [t for t, _ in events].count("response.output_text.delta") == 5
    assert events[-1][0] == "response.completed"
    record = fake.streams[0]
    await record.done.wait()
    assert record.data == data and record.completed and not record.aborted
    assert record.done.is_set() and not record.disconnected
    assert record.frames and b"".join(record.frames) == data
    req = fake.requests[-1]
    assert (req.method, req.path, req.body) == ("POST", "/v1/responses", body)
    assert req.header("x-fake-deltas") == b"5"


@pytest.mark.parametrize("mode", ["event", "coalesce", "split"])
async def test_write_patterns(fake_cloud, cloud_client, mode) -> None:
    fake, _ = fake_cloud
    _, chunks = await _stream(
        cloud_client, stream_body(), **{"x-fake-write": mode, "x-fake-deltas": "6"}
    )
    data = b"".join(chunks)
    record = fake.streams[0]
    await record.done.wait()
    assert data == record.data
    frames = record.frames
    assert len(parse_sse(data)) == len(frames)
    if mode == "event":
        assert record.chunks == frames
    elif mode == "coalesce":
        assert len(record.chunks) == -(-len(frames) // 3)
        assert record.chunks[0] == b"".join(frames[:3])
    else:
        assert len(record.chunks) > len(frames)
        assert any(not c.endswith(b"\n") for c in record.chunks)
        broken = 0
        for chunk in record.chunks:
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                broken += 1
        assert broken > 0, "some write must end or start inside a UTF-8 character"


async def test_split_writes_reach_the_socket_separately(fake_cloud) -> None:
    _, base_url = fake_cloud
    host, port = base_url.removeprefix("http://").removesuffix("/v1").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    body = stream_body()
    head = (
        f"POST /v1/responses HTTP/1.1\r\nhost: {host}\r\nauthorization: {AUTH['authorization']}\r\n"
        f"content-type: application/json\r\nx-fake-write: split\r\nx-fake-deltas: 3\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    await stream.send_all(head + body)
    reads = []
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            reads.append(chunk)
    await stream.aclose()
    raw = b"".join(reads)
    assert raw.endswith(b"0\r\n\r\n"), "chunked body terminated"
    assert b"\r\n4\r\neven\r\n" in raw, "the first event was split after 4 bytes as its own chunk"
    assert len(reads) > 3


async def test_delays_first_event_and_gap(fake_cloud, cloud_client) -> None:
    start = trio.current_time()
    arrivals = []
    headers = {
        **JSON,
        "x-fake-first-delay-ms": "150",
        "x-fake-delay-ms": "10",
        "x-fake-gaps": "5:200",
        "x-fake-deltas": "4",
    }
    async with cloud_client.stream(
        "POST", "/responses", content=stream_body(), headers=headers
    ) as r:
        buffer = b""
        async for chunk in r.aiter_raw():
            buffer += chunk
            while b"\n\n" in buffer:
                _, buffer = buffer.split(b"\n\n", 1)
                arrivals.append(trio.current_time() - start)
    assert arrivals[0] >= 0.15
    assert arrivals[5] - arrivals[4] >= 0.2
    assert all(b - a >= 0.009 for a, b in zip(arrivals[1:], arrivals[2:], strict=False))


@pytest.mark.parametrize("pace", ["relative", "absolute"])
async def test_pace_absolute_keeps_events_on_their_schedule(fake_cloud, autojump_clock, pace):
    """A late wake-up (the clock jumps 0.25 s while the fake sleeps before event 3) delays
    every later event with relative pacing; with absolute pacing the later events are due
    where the schedule put them (event i at i x 100 ms), so benchmarks see no drift."""
    _, base_url = fake_cloud
    headers = {**JSON, "x-fake-delay-ms": "100", "x-fake-deltas": "4", "x-fake-pace": pace}
    arrivals: list[float] = []
    async with httpx2.AsyncClient(base_url=base_url, headers=AUTH, timeout=None) as client:
        async with client.stream("POST", "/responses", content=stream_body(), headers=headers) as r:
            buffer = b""
            async for chunk in r.aiter_raw():
                buffer += chunk
                while b"\n\n" in buffer:
                    _, buffer = buffer.split(b"\n\n", 1)
                    arrivals.append(trio.current_time())
                    if len(arrivals) == 3:
                        autojump_clock.jump(0.25)
    rel = [round(a - arrivals[0], 3) for a in arrivals]
    late = [round(r - i * 0.1, 3) for i, r in enumerate(rel)][5:]
    if pace == "absolute":
        assert late == [0.0] * len(late)
    else:  # pushed back by the jump, less the part of the delay already slept (0 or 0.1 s)
        assert len(set(late)) == 1 and late[0] in (0.15, 0.25)


async def test_long_silent_gap_survives(fake_cloud, autojump_clock) -> None:
    _, base_url = fake_cloud
    start = trio.current_time()
    headers = {**JSON, "x-fake-gaps": "3:15000", "x-fake-deltas": "2"}
    async with httpx2.AsyncClient(base_url=base_url, headers=AUTH, timeout=None) as patient:
        _, chunks = await _stream(patient, stream_body(), **headers)
    assert trio.current_time() - start >= 15
    assert parse_sse(b"".join(chunks))[-1][0] == "response.completed"
    async with httpx2.AsyncClient(base_url=base_url, headers=AUTH, timeout=10) as hasty:
        with pytest.raises(httpx2.ReadTimeout):
            await _stream(hasty, stream_body(), **headers)


async def test_http_error_before_stream(fake_cloud, cloud_client) -> None:
    fake, _ = fake_cloud
    r = await cloud_client.post(
        "/responses",
        content=stream_body(),
        headers={**JSON, "x-fake-fail": "http_error", "x-fake-fail-status": "429"},
    )
    assert r.status_code == 429 and r.headers["retry-after"]
    assert r.json()["error"]["type"] == "rate_limit_exceeded"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = await cloud_client.post(
        "/responses",
        content=stream_body(),
        headers={
            **JSON,
            "x-fake-fail": "http_error",
            "x-fake-fail-status": "402",
            "x-fake-fail-body": "plain words",
        },
    )
    assert (r.status_code, r.text) == (402, "plain words")
    assert r.headers["content-type"].startswith("text/plain")
    assert fake.streams == []


async def test_failed_only_stream(fake_cloud, cloud_client) -> None:
    fake, _ = fake_cloud
    response, chunks = await _stream(
        cloud_client,
        stream_body(),
        **{"x-fake-fail": "failed_only", "x-fake-fail-status": "502", "x-fake-fail-message": "x"},
    )
    assert response.status_code == 200
    events = parse_sse(b"".join(chunks))
    assert events == [
        (
            "response.failed",
            {
                "type": "response.failed",
                "text": "x",
                "error": {"message": "x", "type": "mcp_error"},
                "status_code": 502,
            },
        )
    ]
    await fake.streams[0].done.wait()
    assert fake.streams[0].failed and fake.streams[0].completed


async def test_failed_after_partial_text(fake_cloud, cloud_client) -> None:
    _, chunks = await _stream(
        cloud_client,
        stream_body(),
        **{"x-fake-fail": "failed_after_partial", "x-fake-deltas": "6", "x-fake-fail-after": "2"},
    )
    events = parse_sse(b"".join(chunks))
    types = [t for t, _ in events]
    assert types.count("response.output_text.delta") == 2
    assert types[-1] == "response.failed" and "response.completed" not in types
    assert events[-1][1]["usage"]["output_tokens"] == 2
    done = next(e for t, e in events if t == "response.output_text.done")
    deltas = "".join(e["delta"] for t, e in events if t == "response.output_text.delta")
    assert done["text"] == deltas


@pytest.mark.parametrize("mode", ["event", "coalesce", "split"])
async def test_drop_mid_stream_is_an_aborted_body(fake_cloud, cloud_client, mode) -> None:
    fake, _ = fake_cloud
    received = []
    with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
        async with cloud_client.stream(
            "POST",
            "/responses",
            content=stream_body(),
            headers={**JSON, "x-fake-fail": "drop", "x-fake-write": mode, "x-fake-deltas": "6"},
        ) as r:
            async for chunk in r.aiter_raw():
                received.append(chunk)
    record = fake.streams[0]
    await record.done.wait()
    assert record.aborted and not record.completed
    data = b"".join(received)
    assert record.data.startswith(data)
    assert not record.data.endswith(b"\n\n"), "cut mid-event"
    assert b"response.completed" not in record.data
    r = await cloud_client.get(f"/signature/{record.response_id}")
    assert r.status_code == 404


async def test_non_stream_failures(fake_cloud, cloud_client) -> None:
    body = json.loads(stream_body())
    body["stream"] = False
    r = await cloud_client.post(
        "/responses",
        json=body,
        headers={"x-fake-fail": "failed_only", "x-fake-fail-status": "404"},
    )
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
        await cloud_client.post("/responses", json=body, headers={"x-fake-fail": "drop"})


async def test_unknown_conversation_is_in_band(fake_cloud, cloud_client) -> None:
    body = stream_body(conversation="conv_" + "0" * 32)
    response, chunks = await _stream(cloud_client, body)
    assert response.status_code == 200
    [(kind, event)] = parse_sse(b"".join(chunks))
    assert kind == "response.failed" and event["status_code"] == 404
    assert event["error"] == {"message": "Conversation not found", "type": "not_found"}


async def test_late_title_after_completed_and_signature_excludes_it(
    fake_cloud, cloud_client
) -> None:
    fake, _ = fake_cloud
    created = await cloud_client.post("/conversations", json={"metadata": {}})
    conv_id = created.json()["id"]
    body = stream_body(text="Plan a trip to Lisbon", conversation=conv_id)
    _, chunks = await _stream(
        cloud_client, body, **{"x-fake-title": "after", "x-fake-title-delay-ms": "20"}
    )
    data = b"".join(chunks)
    events = parse_sse(data)
    assert [t for t, _ in events][-2:] == ["response.completed", "conversation.title.updated"]
    assert events[-1][1] == {
        "type": "conversation.title.updated",
        "conversation_title": "Plan a trip to Lisbon",
    }
    cut = data.index(b"event: conversation.title.updated")
    response_id = events[0][1]["response"]["id"]
    sig = (await cloud_client.get(f"/signature/{response_id}")).json()
    expected = f"{hashlib.sha256(body).hexdigest()}:{hashlib.sha256(data[:cut]).hexdigest()}"
    assert sig["text"] == expected
    conv = (await cloud_client.get(f"/conversations/{conv_id}")).json()
    assert conv["metadata"]["title"] == "Plan a trip to Lisbon"
    assert conv["metadata"]["root_response_id"].startswith("resp_")
    items = (await cloud_client.get(f"/conversations/{conv_id}/items")).json()["data"]
    assert [i["role"] for i in items] == ["user", "assistant"]


async def test_signature_verifies_ecdsa_and_ed25519(fake_cloud, cloud_client) -> None:
    body = stream_body(text="verify me")
    _, chunks = await _stream(cloud_client, body)
    received = b"".join(chunks)
    response_id = parse_sse(received)[0][1]["response"]["id"]
    text = f"{hashlib.sha256(body).hexdigest()}:{hashlib.sha256(received).hexdigest()}"

    ecdsa = (await cloud_client.get(f"/signature/{response_id}")).json()
    assert ecdsa["signing_algo"] == "ecdsa" and ecdsa["signature_kind"] == "gateway"
    assert ecdsa["text"] == text
    assert recover_eip191_address(text.encode(), ecdsa["signature"]) == ecdsa["signing_address"]

    ed = (
        await cloud_client.get(f"/signature/{response_id}", params={"signing_algo": "ED25519"})
    ).json()
    assert ed["text"] == text and ed["signing_algo"] == "ed25519"
    key = nacl.signing.VerifyKey(bytes.fromhex(ed["signing_address"]))
    assert key.verify(text.encode(), bytes.fromhex(ed["signature"])) == text.encode()

    report = (
        await cloud_client.get("/attestation/report", params={"signing_algo": "ecdsa"})
    ).json()
    assert report["gateway_attestation"]["signing_address"] == ecdsa["signing_address"]

    bad = await cloud_client.get(f"/signature/{response_id}", params={"signing_algo": "rsa"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "signing_algo"
    missing = await cloud_client.get("/signature/resp_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Signature not found: resp_nope:ecdsa"


async def test_non_stream_signature_over_json_body(fake_cloud, cloud_client) -> None:
    body = json.dumps({"model": "privchat-dev/echo", "input": "hello"}).encode()
    r = await cloud_client.post(
        "/responses", content=body, headers={**JSON, "accept-encoding": "gzip"}
    )
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    raw_json = r.content  # decoded by the cloud_client: the bytes before compression
    assert json.loads(raw_json)["status"] == "completed"
    sig = (await cloud_client.get(f"/signature/{r.json()['id']}")).json()
    assert (
        sig["text"] == f"{hashlib.sha256(body).hexdigest()}:{hashlib.sha256(raw_json).hexdigest()}"
    )


async def test_signature_store_delay(fake_cloud, cloud_client, autojump_clock) -> None:
    fake, _ = fake_cloud
    fake.configure(signature_delay_ms=500)
    _, chunks = await _stream(cloud_client, stream_body())
    response_id = parse_sse(b"".join(chunks))[0][1]["response"]["id"]
    assert (await cloud_client.get(f"/signature/{response_id}")).status_code == 404
    await trio.sleep(0.6)
    assert (await cloud_client.get(f"/signature/{response_id}")).status_code == 200


async def test_client_disconnect_recorded_within_100ms(fake_cloud, cloud_client) -> None:
    fake, _ = fake_cloud
    headers = {**JSON, "x-fake-deltas": "200", "x-fake-delay-ms": "20"}
    async with cloud_client.stream(
        "POST", "/responses", content=stream_body(), headers=headers
    ) as r:
        async for chunk in r.aiter_raw():
            if b"output_text.delta" in chunk:
                break
        closed_at = trio.current_time()
    record = fake.streams[0]
    with trio.fail_after(2):
        await record.disconnect_event.wait()
    assert record.disconnected and not record.completed
    assert record.disconnect_time - closed_at < 0.1
    await record.done.wait()
    assert b"response.completed" not in record.data
    sig = (await cloud_client.get(f"/signature/{record.response_id}")).json()
    assert sig["error_code"] == "STREAM_DISCONNECTED"


async def test_reasoning_and_citation_knobs(fake_cloud, cloud_client) -> None:
    _, chunks = await _stream(
        cloud_client, stream_body(), **{"x-fake-reasoning": "1", "x-fake-citation": "1"}
    )
    types = [t for t, _ in parse_sse(b"".join(chunks))]
    assert types.index("response.reasoning.delta") < types.index("response.output_text.delta")
    assert "response.output_text.annotation.added" in types


async def test_control_route_sets_knobs_for_other_processes(fake_cloud, cloud_client) -> None:
    fake, base_url = fake_cloud
    root = base_url.removesuffix("/v1")
    async with httpx2.AsyncClient(base_url=root) as control:
        r = await control.post("/_fake/config", json={"deltas": 11, "write": "coalesce"})
        assert r.status_code == 200 and r.json()["deltas"] == 11
        assert (await control.post("/_fake/config", json={"write": "bad"})).status_code == 400
    _, chunks = await _stream(cloud_client, stream_body())
    assert [t for t, _ in parse_sse(b"".join(chunks))].count("response.output_text.delta") == 11
    assert fake.knobs.write == "coalesce"
    await fake.streams[0].done.wait()
    async with httpx2.AsyncClient(base_url=root) as control:
        summary = (await control.get("/_fake/streams")).json()
        assert summary["streams"][0]["completed"] is True
        await control.post("/_fake/reset")
    assert fake.knobs.deltas == 8 and fake.streams == []


async def test_encryption_header_rules(fake_cloud, cloud_client) -> None:
    body = json.loads(stream_body())
    body["stream"] = False
    key = "ab" * 32
    r = await cloud_client.post(
        "/responses",
        json=body,
        headers={"x-signing-algo": "ed25519", "x-client-pub-key": key},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "encryption_requires_streaming"
    r = await cloud_client.post("/responses", json=body, headers={"x-signing-algo": "rsa"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_parameter"


async def test_disconnect_during_silent_gap_is_noticed_without_a_write(fake_cloud, cloud_client):
    fake, _ = fake_cloud
    headers = {**JSON, "x-fake-gaps": "2:10000"}
    async with cloud_client.stream(
        "POST", "/responses", content=stream_body(), headers=headers
    ) as r:
        async for chunk in r.aiter_raw():
            if b"response.in_progress" in chunk:
                break
        closed_at = trio.current_time()
    record = fake.streams[0]
    with trio.fail_after(2):
        await record.disconnect_event.wait()
        await record.done.wait()
    assert record.disconnect_time - closed_at < 0.1
    assert not record.completed and not record.aborted
