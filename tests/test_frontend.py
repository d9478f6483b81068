"""The web frontend from FRONTEND_DIR: SPA fallback, cache headers, no traversal (api.md §2.11)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import trio

from .conftest import start_server


def _site(root: Path) -> None:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>spa</title>")
    (root / "assets" / "app-3f9a.js").write_bytes(b"console.log('hi')")
    (root / "guide").mkdir()
    (root / "guide" / "index.html").write_text("<p>docs</p>")


async def test_spa(nursery: trio.Nursery, config, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path / "dist"
    _site(root)
    (tmp_path / "secret.txt").write_text("do not serve")
    server = await start_server(nursery, config, frontend_dir=root)
    async with httpx2.AsyncClient(base_url=server.url) as client:
        for path in ("/", "/chat/123", "/settings"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.text == "<!doctype html><title>spa</title>"
            assert response.headers["cache-control"] == "no-cache, no-store, must-revalidate"
        asset = await client.get("/assets/app-3f9a.js")
        assert asset.status_code == 200 and asset.content == b"console.log('hi')"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        conditional = await client.get(
            "/assets/app-3f9a.js", headers={"if-none-match": asset.headers["etag"]}
        )
        assert conditional.status_code == 304
        missing = await client.get("/assets/nope.js")
        assert missing.status_code == 404 and "cache-control" not in missing.headers
        head = await client.head("/chat/1")
        assert head.status_code == 200 and head.content == b""
        redirect = await client.get("/guide")
        assert redirect.status_code == 307 and redirect.headers["location"].endswith("/guide/")
        assert (await client.get("/guide/")).text == "<p>docs</p>"
        post = await client.post("/chat/1")
        assert post.status_code == 405 and post.headers["allow"] == "GET,HEAD"

    # Traversal: send raw paths, since HTTP clients normalise `..` away.
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    for raw in (
        b"/../secret.txt",
        b"/assets/../../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/..%2fsecret.txt",
    ):
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536)
        await stream.aclose()
        assert b"do not serve" not in data, raw
        assert data.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400")), (raw, data[:40])


async def test_no_frontend_installed(client: httpx2.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "No web frontend is installed" in response.text and 'href="/health"' in response.text
