"""Request bodies under attack (issue 14, findings 4-8): stalled bodies end with 408, size limits
hold while reading for sized and chunked bodies alike, and bad bytes (deep nesting, NUL, unpaired
surrogates) get a 400 that names the problem on every JSON route, never a 500."""

from __future__ import annotations

import json
import uuid

import httpx2
import pytest
import trio

from privchat.api.body import MAX_CHAT_JSON_BYTES, MAX_JSON_DEPTH
from tests.conftest import ADMIN_DOMAIN, auth, login, start_server
from tests.proxyfixtures import API_KEY, JSON, Proxy, body, proxy, start_fake

__all__ = ["proxy"]

MiB = 1024 * 1024


class Raw:
    """One HTTP/1.1 connection driven by hand, to send exactly the bytes a test needs."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.data = b""

    @classmethod
    async def open(cls, url: str) -> Raw:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return cls(await trio.open_tcp_stream(host, int(port)))

    async def head(self, method: str, path: str, headers: dict[str, str]) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: x", *(f"{k}: {v}" for k, v in headers.items())]
        await self.stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def chunk(self, data: bytes) -> None:
        await self.stream.send_all(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def response_head(self, seconds: float = 10) -> bytes:
        """The status line and headers of the answer; fails the test after `seconds`."""
        with trio.fail_after(seconds):
            while b"\r\n\r\n" not in self.data:
                received = await self.stream.receive_some(65536)
                assert received, f"connection closed without an answer: {self.data!r}"
                self.data += received
        return self.data.split(b"\r\n\r\n", 1)[0].lower()

    async def send_until_answered(self, data: bytes, *, chunked: bool) -> bool:
        """Send `data` in 64 KiB pieces; stop once the server answered (True) or closed."""
        for start in range(0, len(data), 64 * 1024):
            piece = data[start : start + 64 * 1024]
            try:
                if chunked:
                    await self.chunk(piece)
                else:
                    await self.stream.send_all(piece)
            except trio.BrokenResourceError:
                return True
            with trio.move_on_after(0):
                received = await self.stream.receive_some(65536)
                self.data += received
                if b"\r\n\r\n" in self.data or not received:
                    return True
        return False

    async def aclose(self) -> None:
        await self.stream.aclose()


@pytest.fixture
async def stalling(nursery: trio.Nursery, config) -> Proxy:  # noqa: ANN001
    """privchat with a short body idle timeout and a 1 MiB upload limit, before the fake cloud."""
    fake, base = await start_fake(nursery)
    server = await start_server(
        nursery,
        config,
        openai_base_url=base,
        openai_api_key=API_KEY,
        body_idle_timeout=0.5,
        max_upload_bytes=MiB,
    )
    return Proxy(fake, base, server, httpx2.AsyncClient(base_url=server.url, timeout=30))


# --- finding 4: a body that stalls ends with 408 ---------------------------------------------


MULTIPART = (
    b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nhello"
)


@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
@pytest.mark.parametrize(
    ("path", "content_type", "half"),
    [
        ("/v1/files", "multipart/form-data; boundary=b", MULTIPART),
        ("/v1/conversations", "application/json", b'{"metadata": {"topic": "'),
        ("/v1/responses", "application/json", body()[:20]),
        ("/v1/users/me/settings", "application/json", b'{"notification": '),
    ],
)
async def test_stalled_half_body_is_408(
    stalling: Proxy, path: str, content_type: str, half: bytes, chunked: bool
) -> None:
    token, _ = await stalling.user()
    raw = await Raw.open(stalling.url)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": "100000"}
    await raw.head(
        "POST" if path != "/v1/users/me/settings" else "PATCH",
        path,
        {"Authorization": f"Bearer {token}", "Content-Type": content_type, **framing},
    )
    if chunked:
        await raw.chunk(half)
    else:
        await raw.stream.send_all(half)
    head = await raw.response_head()  # 0.5 s idle timeout; 10 s is the test's patience
    await raw.aclose()
    assert head.startswith(b"http/1.1 408")
    assert b"connection: close" in head


# --- findings 5 and 6: size limits hold while reading -----------------------------------------


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/files", MiB),
        ("/v1/responses", MAX_CHAT_JSON_BYTES),
        ("/v1/conversations", MAX_CHAT_JSON_BYTES),
    ],
)
async def test_content_length_over_the_limit_is_413_before_the_body(
    stalling: Proxy, path: str, limit: int
) -> None:
    token, _ = await stalling.user()
    raw = await Raw.open(stalling.url)
    await raw.head(
        "POST",
        path,
        {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Length": str(limit + 1),
        },
    )
    head = await raw.response_head()  # nothing of the body was sent
    await raw.aclose()
    assert head.startswith(b"http/1.1 413")
    assert b"connection: close" in head
    assert stalling.fake.requests_to(path) == []


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/files", MiB),
        ("/v1/responses", MAX_CHAT_JSON_BYTES),
        ("/v1/conversations", MAX_CHAT_JSON_BYTES),
    ],
)
async def test_chunked_body_past_the_limit_is_413(stalling: Proxy, path: str, limit: int) -> None:
    token, _ = await stalling.user()
    content_type = "multipart/form-data; boundary=b" if path == "/v1/files" else "application/json"
    raw = await Raw.open(stalling.url)
    await raw.head(
        "POST",
        path,
        {
            "Authorization": f"Bearer {token}",
            "Content-Type": content_type,
            "Transfer-Encoding": "chunked",
        },
    )
    payload = (
        MULTIPART + b"x" * (limit + MiB) if path == "/v1/files" else b'"' + b"x" * (limit + MiB)
    )
    answered = await raw.send_until_answered(payload, chunked=True)
    assert answered, "the whole over-limit body was accepted"
    head = await raw.response_head()
    await raw.aclose()
    assert head.startswith(b"http/1.1 413")
    # The upstream never got a complete request: at most the prefix read before the limit.
    assert all(len(r.body) <= limit for r in stalling.fake.requests_to(path))
    assert not stalling.fake.store.files


async def test_chat_sized_body_is_accepted(proxy: Proxy) -> None:
    """Well under the chat limit but over the 2 MiB of typed-JSON routes: relayed."""
    headers = await proxy.headers()
    big = body(text="a" * (3 * MiB))
    r = await proxy.client.post("/v1/responses", content=big, headers={**headers, **JSON})
    assert r.status_code == 200, r.text[:200]
    assert [len(x.body) for x in proxy.fake.requests_to("/v1/responses")] == [len(big)]


# --- findings 7 and 8: bad bytes are 400 naming the problem, never 500 -------------------------


async def _admin(p: Proxy) -> dict[str, str]:
    return auth(await login(p.client, f"admin-{uuid.uuid4().hex[:8]}@{ADMIN_DOMAIN}"))


ROUTES = [
    ("POST", "/v1/auth/near", None),
    ("POST", "/v1/auth/mock-login", None),
    ("POST", "/v1/users/me/settings", "user"),
    ("PATCH", "/v1/users/me/settings", "user"),
    ("POST", "/v1/responses", "user"),
    ("PATCH", "/v1/admin/models", "admin"),
    ("PATCH", "/v1/admin/configs", "admin"),
]


async def _headers(p: Proxy, who: str | None) -> dict[str, str]:
    if who == "admin":
        return {**await _admin(p), **JSON}
    if who == "user":
        return {**await p.headers(), **JSON}
    return dict(JSON)


@pytest.mark.parametrize(("method", "path", "who"), ROUTES)
async def test_deep_nesting_is_400(proxy: Proxy, method: str, path: str, who: str | None) -> None:
    for depth in (100_000, MAX_JSON_DEPTH + 1):
        headers = await _headers(proxy, who)  # a new user each time: /v1/responses is rate limited
        deep = b"[" * depth + b"]" * depth
        r = await proxy.client.request(method, path, content=deep, headers=headers)
        assert r.status_code == 400, (depth, r.status_code, r.text[:200])
        assert "nested deeper than" in r.text
    assert proxy.fake.requests_to("/v1/responses") == []


BAD_STRINGS = ["a\u0000b", "\ud800", "x\udfff"]


@pytest.mark.parametrize("bad", BAD_STRINGS, ids=["nul", "high-surrogate", "low-surrogate"])
@pytest.mark.parametrize(
    ("method", "path", "who", "document", "field"),
    [
        ("POST", "/v1/auth/mock-login", None, lambda s: {"email": s, "name": "n"}, "email"),
        ("POST", "/v1/auth/near", None, lambda s: {"signature": s}, "signature"),
        (
            "PATCH",
            "/v1/users/me/settings",
            "user",
            lambda s: {"system_prompt": s},
            "system_prompt",
        ),
        (
            "POST",
            "/v1/users/me/settings",
            "user",
            lambda s: {
                "notification": True,
                "web_search": True,
                "appearance": "dark",
                "system_prompt": s,
            },
            "system_prompt",
        ),
        ("POST", "/v1/responses", "user", lambda s: {"model": s, "input": "hi"}, "model"),
        (
            "POST",
            "/v1/responses",
            "user",
            lambda s: {"model": "privchat-dev/echo", "input": [{"content": s}]},
            "input.0.content",
        ),
        ("POST", "/v1/responses", "user", lambda s: {"conversation": {"id": s}}, "conversation.id"),
        ("PATCH", "/v1/admin/models", "admin", lambda s: {s: {"public": True}}, "KEY"),
        (
            "PATCH",
            "/v1/admin/models",
            "admin",
            lambda s: {"m": {"system_prompt": s}},
            "m.system_prompt",
        ),
        ("PATCH", "/v1/admin/configs", "admin", lambda s: {"default_model": s}, "default_model"),
    ],
)
async def test_nul_and_unpaired_surrogates_are_400_naming_the_field(
    proxy: Proxy,
    method: str,
    path: str,
    who: str | None,
    document,
    field: str,
    bad: str,  # noqa: ANN001
) -> None:
    headers = await _headers(proxy, who)
    if field == "KEY":  # the bad key itself, its bad characters shown as "?"
        field = "".join("?" if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c for c in bad)
    content = json.dumps(document(bad)).encode()  # ensure_ascii: \u0000 and \ud800 escapes
    r = await proxy.client.request(method, path, content=content, headers=headers)
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert f"`{field}` contains a NUL character or an unpaired surrogate" in r.text
    assert proxy.fake.requests_to("/v1/responses") == []


async def test_a_paired_surrogate_is_fine(proxy: Proxy) -> None:
    headers = {**await proxy.headers(), **JSON}
    r = await proxy.client.patch(
        "/v1/users/me/settings",
        content=json.dumps({"system_prompt": "smile \U0001f600"}).encode(),
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["system_prompt"] == "smile \U0001f600"
