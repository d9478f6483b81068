"""The HTTP core: health, request ids, CORS, unknown routes, error families, keep-alive."""

from __future__ import annotations

import httpx2
import trio
import trio.lowlevel

from privchat import __version__
from privchat.cors import CorsPolicy
from privchat.runtime import Running

from .conftest import auth, login, start_server


async def test_health(client: httpx2.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}
    assert response.headers["content-type"] == "application/json"


async def test_request_id_is_echoed_or_generated(client: httpx2.AsyncClient) -> None:
    echoed = await client.get("/health", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    fresh = await client.get("/health")
    assert len(fresh.headers["x-request-id"]) == 36
    error = await client.get("/v1/nope")
    assert "x-request-id" in error.headers


async def test_unknown_api_paths_are_json_404(client: httpx2.AsyncClient) -> None:
    for method, path in (("GET", "/v1/unknown"), ("POST", "/v1/unknown/deeper"), ("GET", "/api/x")):
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "not_found"


async def test_wrong_method_on_known_route_is_405(client: httpx2.AsyncClient) -> None:
    response = await client.post("/health")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


async def test_options_answered_by_cors_layer(client: httpx2.AsyncClient) -> None:
    response = await client.options(
        "/v1/users/me",
        headers={"Origin": "https://app.near.ai", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "https://app.near.ai"
    assert response.headers["access-control-allow-methods"] == "*"
    assert response.headers["access-control-allow-headers"] == "*"
    assert "access-control-request-method" in response.headers["vary"]


async def test_cors_headers_on_normal_and_denied_origins(client: httpx2.AsyncClient) -> None:
    allowed = await client.get("/health", headers={"Origin": "http://localhost:5173"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert allowed.headers["access-control-expose-headers"] == "*"
    assert "access-control-allow-credentials" not in allowed.headers
    denied = await client.get("/health", headers={"Origin": "https://evil.com"})
    assert "access-control-allow-origin" not in denied.headers
    assert denied.status_code == 200


def test_cors_rule_matches_reference_cases() -> None:
    """Scenarios 48 and 49 of api.md §6.2."""
    policy = CorsPolicy.parse(
        ["https://example.com", "http://test.com", "*.near.ai", "*-example.com"]
    )
    for origin in (
        "https://example.com", "http://test.com", "http://localhost:3000", "http://localhost:8080",
        "http://localhost", "http://127.0.0.1:3000", "http://127.0.0.1:8080", "http://127.0.0.1",
        "https://app.near.ai", "https://chat.near.ai", "https://preview-example.com",
        "https://staging-example.com",
    ):  # fmt: skip
        assert policy.allows(origin), origin
    for origin in (
        "https://evil.com", "http://example.com", "http://localhost.evil.com",
        "http://localhost.evil.com:3000", "http://127.0.0.1.evil.com", "http://app.near.ai",
        "https://fakenear.ai", "https://near.ai.evil.com", None, "",
    ):  # fmt: skip
        assert not policy.allows(origin), origin
    assert CorsPolicy.parse(["https://example.com,http://test.com"][0].split(",")).exact == {
        "https://example.com",
        "http://test.com",
    }
    assert CorsPolicy.parse(["*.near.ai"]).suffixes == (".near.ai",)
    assert CorsPolicy.parse(["*near.ai"]).suffixes == (".near.ai",)
    assert CorsPolicy.parse(["*-example.com"]).suffixes == ("-example.com",)
    mixed = CorsPolicy.parse(" https://example.com ,,*.near.ai,".split(","))
    assert mixed.exact == {"https://example.com"} and mixed.suffixes == (".near.ai",)


async def test_session_guard_messages_in_order(client: httpx2.AsyncClient) -> None:
    cases = [
        ({}, "Missing authorization header"),
        ({"Authorization": "Basic abc"}, "Invalid authorization header format"),
        ({"Authorization": "bearer sess_" + "0" * 32}, "Invalid authorization header format"),
        ({"Authorization": "Bearer abc"}, "Invalid or malformed session token"),
        ({"Authorization": "Bearer sess_" + "0" * 31}, "Invalid or malformed session token"),
        ({"Authorization": "Bearer sess_" + "0" * 32}, "Session not found"),
    ]
    for headers, message in cases:
        response = await client.get("/v1/admin/users", headers=headers)
        assert response.status_code == 401, headers
        body = response.json()
        assert body["code"] == "unauthorized" and body["message"] == message
        assert body["details"]


async def test_expired_session_is_rejected(client: httpx2.AsyncClient, server: Running) -> None:
    token = await login(client)
    await server.services.db.execute(
        "UPDATE sessions SET expires_at = NOW() - INTERVAL '1 second' WHERE token_hash = $1",
        __import__("hashlib").sha256(token.encode()).hexdigest(),
    )
    response = await client.get("/v1/admin/users", headers=auth(token))
    assert response.status_code == 401
    assert response.json()["message"] == "Session has expired"


async def test_admin_prefix_guard(client: httpx2.AsyncClient) -> None:
    user = await login(client, "someone@no-admin.org")
    for path in ("/v1/admin/users", "/v1/admin/not-yet-a-route", "/v1/admin/models/x"):
        response = await client.get(path, headers=auth(user))
        assert response.status_code == 403, path
        assert response.json() == {"code": "forbidden", "message": "Admin access required"}
    admin = await login(client, "boss@admin.org")
    response = await client.get("/v1/admin/not-yet-a-route", headers=auth(admin))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_near_domain_never_grants_admin(client: httpx2.AsyncClient, config) -> None:  # noqa: ANN001
    from privchat.auth.guards import admin_domain

    assert admin_domain("alice@Admin.org", frozenset({"admin.org"}))
    assert not admin_domain("alice.near@near", frozenset({"near"}))
    assert not admin_domain("no-at-sign", frozenset({"admin.org"}))


async def test_malformed_json_bodies_get_text_errors(client: httpx2.AsyncClient) -> None:
    cases = [
        (
            {"content": b'{"email": "a@b.c"}'},
            415,
            "Expected request with `Content-Type: application/json`",
        ),
        (
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "Failed to parse",
        ),
        ({"json": {"email": 5}}, 422, "Failed to deserialize the JSON body"),
        ({"json": {"name": "x"}}, 422, "Failed to deserialize the JSON body"),
        (
            {
                "content": b"[" + b"1," * (1024 * 1024 + 10) + b"1]",
                "headers": {"content-type": "application/json"},
            },
            413,
            "Failed to buffer the request body",
        ),
    ]
    for kwargs, status, prefix in cases:
        response = await client.post("/v1/auth/mock-login", **kwargs)
        assert response.status_code == status, (status, response.text)
        assert response.text.startswith(prefix)
        assert response.headers["content-type"].startswith("text/plain")


async def test_rejected_posts_do_not_wedge_keep_alive(server: Running) -> None:
    """Pitfall 1: 100 POSTs answered before their body is read, on one connection, headers and
    body in separate writes (as httpx and the openai SDK send them)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    body = b'{"model": "m", "input": "hello"}' * 64
    head = (
        b"POST /v1/admin/vpc/revoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    buffer = b""
    with trio.fail_after(30):
        for _ in range(100):
            await stream.send_all(head)
            await trio.lowlevel.checkpoint()
            await stream.send_all(body)
            while b"\r\n\r\n" not in buffer:
                buffer += await stream.receive_some(65536)
            header_block, _, rest = buffer.partition(b"\r\n\r\n")
            assert header_block.startswith(b"HTTP/1.1 401"), header_block[:40]
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in header_block.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(rest) < length:
                rest += await stream.receive_some(65536)
            buffer = rest[length:]
            assert b"connection: close" not in header_block.lower()
    await stream.aclose()


async def test_body_that_never_arrives_times_out(nursery: trio.Nursery, config) -> None:  # noqa: ANN001
    """A client that announces a body and stalls gets an answer or a closed connection, not a hang."""
    server = await start_server(nursery, config, body_idle_timeout=1.0)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(
        b"POST /v1/auth/mock-login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"email"'
    )
    with trio.fail_after(30):
        data = await stream.receive_some(65536)
    assert data == b"" or data.startswith(b"HTTP/1.1 408")
    await stream.aclose()


async def test_metrics_count_requests_by_normalised_endpoint(client: httpx2.AsyncClient) -> None:
    await client.get("/health")
    await client.get("/v1/conversations/conv_abc123/items")
    text = (await client.get("/metrics")).text
    assert (
        'chat_api_http_requests_total{endpoint="/health",environment="development",method="GET",status_code="200"}'
        in text
    )
    assert 'endpoint="/v1/conversations/{id}/items"' in text
    assert "chat_api_http_duration_seconds_bucket" in text


async def test_connection_close_is_honoured(server: Running) -> None:
    """`Connection: close` gets its answer and then EOF, on success and on error paths alike.

    Without the shielded final send in app.py, quart-trio's cancellation on `http.disconnect`
    interrupts hypercorn's close path and the socket stays open until the keep-alive timeout.
    """
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    for path in (b"/health", b"/v1/nothing", b"/missing.js"):
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
        await stream.aclose()
        assert data.startswith(b"HTTP/1.1 "), path


async def test_idle_keep_alive_connection_closed_by_the_client_closes_at_once(
    server: Running,
) -> None:
    """A client that ends an idle keep-alive connection gets the server's end of it at once, not
    after the keep-alive timeout (hypercorn_fixes.py: the socket would sit in CLOSE_WAIT)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    streams = []
    for _ in range(5):
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                data += await stream.receive_some(65536)
        assert data.startswith(b"HTTP/1.1 200")
        streams.append(stream)
    assert server.services.config.keep_alive_timeout > 30
    for stream in streams:
        await stream.send_eof()  # the client is done with the idle connection
        with trio.fail_after(5):
            assert await stream.receive_some(65536) == b""  # and the server closes its end
        await stream.aclose()


async def test_wrong_method_on_session_route_is_401_then_405(client: httpx2.AsyncClient) -> None:
    """api.md §1.1: the auth layer wraps the route including its 405 handling."""
    for method, path in (
        ("PUT", "/v1/users/me"),
        ("DELETE", "/v1/configs"),
        ("GET", "/v1/auth/logout"),
    ):
        anonymous = await client.request(method, path)
        assert anonymous.status_code == 401, path
        assert anonymous.json()["message"] == "Missing authorization header"
    token = await login(client)
    signed_in = await client.put("/v1/users/me", headers=auth(token))
    assert signed_in.status_code == 405 and "GET" in signed_in.headers["allow"]
    # Routes outside the session guard answer 405 straight away.
    assert (await client.post("/v1/attestation/report")).status_code == 405


async def test_wrong_method_on_admin_route_is_405(client: httpx2.AsyncClient) -> None:
    admin = await login(client, "methods@admin.org")
    response = await client.put("/v1/admin/users", headers=auth(admin))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET,HEAD"
    assert (await client.put("/v1/admin/nothing-here", headers=auth(admin))).status_code == 404
    assert (await client.put("/v1/admin/users")).status_code == 401  # the guard runs first
