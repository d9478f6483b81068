"""upstream.md §9 conformance of the relay, through privchat, against the fake NEAR AI Cloud:
byte-exact SSE for every write pattern and failure mode, per-event latency, long silent gaps,
aborts in both directions, request bytes, non-2xx, compression, signatures (D1, D2, D3, D8)."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

import brotli
import httpx2
import nacl.signing
import pytest
import trio

from privchat import hypercorn_fixes
from privchat.devtools.fake_cloud.signing import recover_eip191_address
from privchat.upstream import Upstream, client_headers
from privchat.upstream.client import StaticKey
from tests.fakecloud_fixtures import parse_sse
from tests.proxyfixtures import API_KEY, JSON, Proxy, body, proxy, sha

__all__ = ["proxy"]


async def _stream(
    p: Proxy, headers: dict[str, str], data: bytes | None = None
) -> tuple[httpx2.Response, bytes]:
    chunks: list[bytes] = []
    async with p.client.stream(
        "POST", "/v1/responses", content=data or body(), headers={**JSON, **headers}
    ) as r:
        async for chunk in r.aiter_raw():
            chunks.append(chunk)
    return r, b"".join(chunks)


@pytest.mark.parametrize("write", ["event", "coalesce", "split"])
@pytest.mark.parametrize("fail", ["none", "failed_only", "failed_after_partial"])
async def test_sse_bytes_out_equal_bytes_in(proxy: Proxy, write: str, fail: str) -> None:
    headers = await proxy.headers()
    r, data = await _stream(
        proxy, {**headers, "x-fake-write": write, "x-fake-fail": fail, "x-fake-deltas": "12"}
    )
    record = proxy.fake.streams[0]
    await record.done.wait()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert record.completed
    assert sha(data) == sha(record.data)
    assert "server-timing" in r.headers and "upstream;dur=" in r.headers["server-timing"]
    parse_sse(data)  # still well-formed SSE


async def test_each_event_reaches_client_before_the_next_is_emitted(proxy: Proxy) -> None:
    headers = await proxy.headers()
    frames_seen = 0
    buffer = b""
    async with proxy.client.stream(
        "POST",
        "/v1/responses",
        content=body(),
        headers={**JSON, **headers, "x-fake-delay-ms": "150", "x-fake-deltas": "6"},
    ) as r:
        record = await proxy.fake.wait_stream(0)
        async for chunk in r.aiter_raw():
            buffer += chunk
            frames_seen = buffer.count(b"\n\n")
            # The fake has written exactly the frames we hold: nothing was held back by privchat.
            assert len(record.chunks) == frames_seen, (len(record.chunks), frames_seen)
    assert frames_seen == len(record.frames) > 6


async def test_twelve_second_silent_gap_survives(proxy: Proxy) -> None:
    """A real 12 s gap mid-stream (the only long wait of the suite): nothing times out."""
    headers = await proxy.headers()
    with trio.fail_after(40):
        r, data = await _stream(proxy, {**headers, "x-fake-gaps": "3:12000"})
    record = proxy.fake.streams[0]
    await record.done.wait()
    assert r.status_code == 200 and record.completed and data == record.data


async def test_idle_timeout_aborts_client_body(nursery: trio.Nursery, config) -> None:  # noqa: ANN001
    """D8: a gap longer than UPSTREAM_IDLE_TIMEOUT_SECONDS aborts the client's body; a shorter
    one (with the same low timeout) does not; there is no total deadline."""
    from tests.conftest import start_server
    from tests.proxyfixtures import start_fake

    fake, base = await start_fake(nursery)
    server = await start_server(
        nursery, config, openai_base_url=base, openai_api_key=API_KEY, upstream_idle_timeout=0.6
    )
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
        p = Proxy(fake, base, server, client)
        headers = await p.headers()
        # 0.4 s between every event: the stream lasts several idle periods, yet survives.
        r, data = await _stream(p, {**headers, "x-fake-delay-ms": "400", "x-fake-deltas": "3"})
        await fake.streams[0].done.wait()
        assert fake.streams[0].completed and data == fake.streams[0].data
        headers = await p.headers()
        received = b""
        with pytest.raises(httpx2.RemoteProtocolError):
            async with client.stream(
                "POST",
                "/v1/responses",
                content=body(),
                headers={**JSON, **headers, "x-fake-gaps": "3:2000"},
            ) as r:
                async for chunk in r.aiter_raw():
                    received += chunk
        assert r.status_code == 200
        assert received and b"response.completed" not in received


async def test_upstream_drop_aborts_client_body(proxy: Proxy) -> None:
    for write in ("event", "split"):
        headers = await proxy.headers()
        received = b""
        with pytest.raises(httpx2.RemoteProtocolError):
            async with proxy.client.stream(
                "POST",
                "/v1/responses",
                content=body(),
                headers={**JSON, **headers, "x-fake-fail": "drop", "x-fake-write": write},
            ) as r:
                async for chunk in r.aiter_raw():
                    received += chunk
        record = proxy.fake.streams[-1]
        await record.done.wait()
        assert record.aborted
        assert record.data.startswith(received) and not received.endswith(b"\n\n")
        # The connection pool still serves afterwards.
        ok, data = await _stream(proxy, await proxy.headers())
        assert ok.status_code == 200 and data == proxy.fake.streams[-1].data


async def test_client_abort_closes_upstream_within_100ms(proxy: Proxy) -> None:
    for index in range(3):
        headers = await proxy.headers()
        async with proxy.client.stream(
            "POST",
            "/v1/responses",
            content=body(),
            headers={**JSON, **headers, "x-fake-delay-ms": "50", "x-fake-deltas": "200"},
        ) as r:
            async for _ in r.aiter_raw():
                break
            record = proxy.fake.streams[index]
            closed_at = trio.current_time()
        # Leaving the block closed our connection mid-body.
        with trio.fail_after(1):
            await record.disconnect_event.wait()
        assert record.disconnect_time is not None
        assert record.disconnect_time - closed_at < 0.1, record.disconnect_time - closed_at
        assert not record.completed


async def test_client_abort_before_first_byte_cancels_upstream(proxy: Proxy) -> None:
    headers = await proxy.headers()
    async with trio.open_nursery() as nursery:

        async def go() -> None:
            await proxy.client.post(
                "/v1/responses",
                content=body(),
                headers={**JSON, **headers, "x-fake-first-delay-ms": "5000"},
            )

        nursery.start_soon(go)
        record = await proxy.fake.wait_stream(0)
        cancelled_at = trio.current_time()
        nursery.cancel_scope.cancel()
    with trio.fail_after(1):
        await record.disconnect_event.wait()
    assert record.disconnect_time - cancelled_at < 0.1


async def test_request_bytes_reach_upstream_unchanged(proxy: Proxy) -> None:
    headers = await proxy.headers()
    raw = (
        b'{ "input" : "caf\\u00e9 \xe2\x98\x95",\n  "model":"privchat-dev/echo",'
        b' "zeta": [1.0, 2e3], "stream": false , "alpha":null}  '
    )
    r = await proxy.client.post("/v1/responses", content=raw, headers={**JSON, **headers})
    assert r.status_code == 200
    [sent] = proxy.fake.requests_to("/v1/responses", "POST")
    assert sent.body == raw
    assert sent.header("content-length") == str(len(raw)).encode()


async def test_multipart_body_reaches_upstream_unchanged(proxy: Proxy) -> None:
    """The relay primitive streams a multipart upload (with its boundary) byte for byte."""
    boundary = "privchat-test-boundary-7d1"
    payload = bytes(range(256)) * 64
    raw = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def pieces():  # noqa: ANN202
        for start in range(0, len(raw), 1000):
            yield raw[start : start + 1000]

    upstream = Upstream(proxy.fake_url, StaticKey(API_KEY))
    try:
        headers = client_headers(
            [
                ("Content-Type", f"multipart/form-data; boundary={boundary}"),
                ("Content-Length", str(len(raw))),
                ("Cookie", "session=secret"),
            ]
        )
        response = await upstream.open("POST", "files", headers=headers, content=pieces())
        await response.aread()
        await response.aclose()
    finally:
        await upstream.aclose()
    assert response.status_code == 201, response.text
    [sent] = proxy.fake.requests_to("/v1/files", "POST")
    assert sent.body == raw
    assert sent.header("content-type") == f"multipart/form-data; boundary={boundary}".encode()
    assert sent.header("cookie") is None


@pytest.mark.parametrize(
    ("status", "raw_body"),
    [(429, "slow down, please"), (429, None), (503, None), (400, None), (500, "boom")],
)
async def test_non_2xx_relayed_verbatim(proxy: Proxy, status: int, raw_body: str | None) -> None:
    headers = await proxy.headers()
    knobs = {"x-fake-fail": "http_error", "x-fake-fail-status": str(status)}
    if raw_body is not None:
        knobs["x-fake-fail-body"] = raw_body
    async with httpx2.AsyncClient(base_url=proxy.fake_url) as direct:
        expected = await direct.post(
            "/responses",
            content=body(),
            headers={**JSON, **knobs, "authorization": f"Bearer {API_KEY}"},
        )
    r = await proxy.client.post(
        "/v1/responses", content=body(), headers={**JSON, **headers, **knobs}
    )
    assert r.status_code == status == expected.status_code
    assert r.headers["content-type"] == expected.headers["content-type"]
    if raw_body is not None:
        assert r.content == raw_body.encode()
    else:
        assert r.json() == expected.json()
    if status == 429 and raw_body is None:
        assert r.headers["retry-after"] == expected.headers["retry-after"]
    assert "server-timing" in r.headers


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_compressed_body_relayed_with_encoding_and_no_stale_length(
    proxy: Proxy, encoding: str
) -> None:
    headers = await proxy.headers()
    data = json.loads(body(text="compress me " * 20))
    data["stream"] = False
    r = await proxy.client.post(
        "/v1/responses", json=data, headers={**headers, "accept-encoding": encoding}
    )
    assert r.status_code == 200
    assert r.headers["content-encoding"] == encoding
    assert r.headers.get("content-length") in (None, str(len(r.content)))
    assert r.json()["object"] == "response"  # the client decodes what it asked for
    # Raw relay check: fetch raw bytes and decode them ourselves.
    async with proxy.client.stream(
        "POST",
        "/v1/responses",
        json=data,
        headers={**(await proxy.headers()), "accept-encoding": encoding},
    ) as s:
        compressed = b"".join([c async for c in s.aiter_raw()])
    plain = gzip.decompress(compressed) if encoding == "gzip" else brotli.decompress(compressed)
    assert json.loads(plain)["object"] == "response"
    assert s.headers.get("content-length") in (None, str(len(compressed)))


async def test_signature_round_trip_verifies_through_privchat(proxy: Proxy) -> None:
    headers = await proxy.headers()
    request_body = body(text="verify me")
    _, data = await _stream(proxy, headers, request_body)
    response_id = parse_sse(data)[0][1]["response"]["id"]
    text = f"{hashlib.sha256(request_body).hexdigest()}:{hashlib.sha256(data).hexdigest()}"
    ecdsa = (await proxy.client.get(f"/v1/signature/{response_id}", headers=headers)).json()
    assert ecdsa["text"] == text
    assert recover_eip191_address(text.encode(), ecdsa["signature"]) == ecdsa["signing_address"]
    # D1: the query string reaches upstream, so the client can ask for ed25519.
    r = await proxy.client.get(
        f"/v1/signature/{response_id}?model=privchat-dev%2Fecho&signing_algo=ed25519",
        headers=headers,
    )
    ed = r.json()
    assert ed["signing_algo"] == "ed25519" and ed["text"] == text
    key = nacl.signing.VerifyKey(bytes.fromhex(ed["signing_address"]))
    assert key.verify(text.encode(), bytes.fromhex(ed["signature"])) == text.encode()
    [*_, last] = proxy.fake.requests_to(f"/v1/signature/{response_id}")
    assert last.query == b"model=privchat-dev%2Fecho&signing_algo=ed25519"
    missing = await proxy.client.get("/v1/signature/resp_nope", headers=headers)
    assert missing.status_code == 404 and "Signature not found" in missing.text


async def test_request_header_policy_d2(proxy: Proxy) -> None:
    headers = await proxy.headers()
    sent = {
        **JSON,
        **headers,
        "cookie": "sid=secret",
        "origin": "https://evil.example",
        "referer": "https://evil.example/page",
        "forwarded": "for=1.2.3.4",
        "x-forwarded-for": "1.2.3.4",
        "x-forwarded-proto": "https",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "te": "trailers",
        "x-signing-algo": "ed25519",
        "x-request-id": "4b9a3f44-2f3e-4a1e-9d4b-6d1e2f3a4b5c",
        "accept-encoding": "gzip, br",
        "user-agent": "privchat-test/1",
    }
    data = json.loads(body())
    data["stream"] = False
    r = await proxy.client.post("/v1/responses", content=json.dumps(data).encode(), headers=sent)
    assert r.status_code == 200
    [request] = proxy.fake.requests_to("/v1/responses", "POST")
    names = {k.decode().lower() for k, _ in request.headers}
    for dropped in (
        "cookie",
        "origin",
        "referer",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "proxy-authorization",
        "te",
    ):
        assert dropped not in names, dropped
    assert request.header("authorization") == f"Bearer {API_KEY}".encode()
    assert request.header("x-signing-algo") == b"ed25519"
    assert request.header("x-request-id") == b"4b9a3f44-2f3e-4a1e-9d4b-6d1e2f3a4b5c"
    assert request.header("accept-encoding") == b"gzip, br"
    assert request.header("user-agent") == b"privchat-test/1"


async def test_repeated_response_headers_kept_d3(proxy: Proxy) -> None:
    headers = await proxy.headers()
    async with httpx2.AsyncClient(base_url=proxy.fake_url) as direct:
        expected = await direct.get(
            "/model/list", headers={"authorization": f"Bearer {API_KEY}", "origin": "http://x"}
        )
    upstream_vary = expected.headers.get_list("vary")
    assert len(upstream_vary) >= 2, upstream_vary  # the fake sends several vary headers
    # The caller's own response: a signature of any other id is never asked upstream.
    _, data = await _stream(proxy, headers, body(text="vary"))
    response_id = parse_sse(data)[0][1]["response"]["id"]
    r = await proxy.client.get(
        f"/v1/signature/{response_id}", headers={**headers, "origin": "http://x"}
    )
    relayed = r.headers.get_list("vary")
    async with httpx2.AsyncClient(base_url=proxy.fake_url) as direct:
        upstream = await direct.get(
            f"/signature/{response_id}",
            headers={"authorization": f"Bearer {API_KEY}", "origin": "http://x"},
        )
    for value in upstream.headers.get_list("vary"):
        assert value in relayed, (value, relayed)
    assert r.headers["x-request-id"] and "date" in r.headers
    assert len(r.headers.get_list("date")) == 1


async def test_upstream_down_is_502_and_slow_connect_is_504(nursery: trio.Nursery, config) -> None:  # noqa: ANN001
    from tests.conftest import auth, login, start_server

    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens here any more
    server = await start_server(nursery, config, openai_base_url=f"http://127.0.0.1:{port}/v1")
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
        token = await login(client)
        r = await client.post("/v1/responses", content=body(), headers={**JSON, **auth(token)})
        assert r.status_code == 502
        assert r.json()["error"].startswith("OpenAI API error: API error: ")
        r = await client.get("/v1/model/list", headers=auth(token))
        assert r.status_code == 502 and "error" in r.json()
    # A server that accepts but never answers: the idle (read) timeout gives 504.
    silent = trio.socket.socket()
    await silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    server = await start_server(
        nursery, config, openai_base_url=f"http://127.0.0.1:{port}/v1", upstream_idle_timeout=0.5
    )
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
        token = await login(client)
        with trio.fail_after(5):
            r = await client.post("/v1/responses", content=body(), headers={**JSON, **auth(token)})
        assert r.status_code == 504 and r.json()["error"].startswith("OpenAI API error")
    silent.close()


async def test_own_headers_replace_the_upstreams(proxy: Proxy) -> None:
    """R1: `date`, `server` and CORS headers are privchat's own, never the upstream's."""
    headers = await proxy.headers()
    r = await proxy.client.get(
        "/v1/model/list", headers={**headers, "Origin": "https://evil.example"}
    )
    assert r.status_code == 200
    assert len(r.headers.get_list("date")) == 1
    assert "server" not in r.headers
    assert "access-control-allow-origin" not in r.headers  # privchat's CORS policy said no
    r, _ = await _stream(proxy, {**headers, "Origin": "https://app.near.ai"})
    assert r.headers.get_list("access-control-allow-origin") == ["https://app.near.ai"]
    assert len(r.headers.get_list("date")) == 1


async def test_streamed_body_skips_the_asgi_send_chain(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay writes its chunks with `hypercorn_fixes.body_writer()`: no chunk in the middle
    of the body goes through Quart's, the middleware's and Hypercorn's `send` chain."""
    direct: list[int] = []
    via_asgi: list[bool] = []
    port = int(proxy.url.rsplit(":", 1)[1])  # privchat's streams, not the fake cloud's
    stream_class = hypercorn_fixes._HTTPStream
    send_body_chunk, app_send = stream_class.send_body_chunk, stream_class.app_send

    async def spy_chunk(self: hypercorn_fixes._HTTPStream, body: bytes) -> bool:
        if self.server[1] == port:
            direct.append(len(body))
        return await send_body_chunk(self, body)

    async def spy_send(self: hypercorn_fixes._HTTPStream, message: Any) -> None:
        if self.server[1] == port and message and message["type"] == "http.response.body":
            via_asgi.append(message.get("more_body", False))
        await app_send(self, message)

    headers = await proxy.headers()
    monkeypatch.setattr(stream_class, "send_body_chunk", spy_chunk)
    monkeypatch.setattr(stream_class, "app_send", spy_send)
    r, data = await _stream(proxy, {**headers, "x-fake-write": "event", "x-fake-deltas": "12"})
    record = proxy.fake.streams[0]
    await record.done.wait()
    assert r.status_code == 200 and sha(data) == sha(record.data)
    assert direct and sum(direct) == len(record.data)  # the SSE bytes, all written directly
    assert via_asgi == [False]  # only Quart's end of the body took the ASGI path
