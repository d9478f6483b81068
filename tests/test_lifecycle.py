"""The process lifecycle: `privchat serve` from the CLI, graceful SIGTERM (D10), streams not cut."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx2
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import Blueprint, Response

from privchat.app import create_app
from privchat.config import load_config
from privchat.observability import Metrics
from privchat.services.registry import Services

from .dbtools import empty_database, query

BIG = 32 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_for_line(proc: trio.Process, needle: str, seen: list[str]) -> None:
    assert proc.stderr is not None
    buffer = b""
    while needle not in "".join(seen):
        chunk = await proc.stderr.receive_some(65536)
        assert chunk, f"process exited before logging {needle!r}: {''.join(seen)[-2000:]}"
        buffer += chunk
        *lines, rest = buffer.split(b"\n")
        buffer = rest
        seen.extend(line.decode() + "\n" for line in lines)


async def test_serve_migrates_then_sigterm_drains_in_flight_stream(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(1024) * (BIG // 1024))
    port = _free_port()
    with empty_database(database_url) as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": str(port),
            "FRONTEND_DIR": str(tmp_path),
            "SHUTDOWN_GRACE_SECONDS": "30",
            "LOG_FORMAT": "json",
            "DEV": "true",  # mock attestation: no dstack agent on this machine
            "OPENAI_API_KEY": "sk-test",
        }
        seen: list[str] = []
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "privchat", "serve"],
            env=env,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )
        try:
            with trio.fail_after(60):
                await _wait_for_line(proc, "privchat serving", seen)
            base = f"http://127.0.0.1:{port}"
            async with httpx2.AsyncClient(base_url=base) as client:
                health = await client.get("/health")
                assert health.status_code == 200 and health.json()["status"] == "ok"
                tables = query(
                    url,
                    "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
                )
                assert tables[0]["n"] == 16  # 14 tables, response_owners, migration history

                async with client.stream("GET", "/big.bin") as stream:
                    received = 0
                    chunks = stream.aiter_raw()
                    received += len(await chunks.__anext__())
                    proc.send_signal(signal.SIGTERM)
                    with trio.fail_after(20):
                        await _wait_for_line(proc, "shutdown requested", seen)
                        # New connections are refused once the listener closed.
                        while True:
                            try:
                                probe = await trio.open_tcp_stream("127.0.0.1", port)
                            except OSError:
                                break
                            await probe.aclose()
                            await trio.sleep(0.05)
                    async for chunk in chunks:  # the in-flight stream still completes
                        received += len(chunk)
                    assert received == BIG
            with trio.fail_after(30):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_streams_outlive_the_framework_response_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Pitfall 2: Quart's 60 s RESPONSE_TIMEOUT must not cut a streamed body.

    The app is privchat's own factory; a test blueprint streams with a 90 s pause in virtual time.
    The control run re-enables Quart's timeout and shows the same stream gets cut, so the
    assertion can fail.
    """
    bp = Blueprint("slow", __name__)

    @bp.get("/slow")
    async def slow() -> Response:
        async def body():  # noqa: ANN202
            yield b"first "
            await trio.sleep(90)
            yield b"last"

        return Response(body(), content_type="text/plain")

    async def fetch(response_timeout: float | None) -> bytes:
        config = load_config({}, dev=True)
        svc = Services(config, None, None, Metrics("test"))  # type: ignore[arg-type]
        app = create_app(svc)
        app.register_blueprint(bp)
        if response_timeout is not None:
            app.config["RESPONSE_TIMEOUT"] = response_timeout
        hc = HypercornConfig()
        hc.bind = ["127.0.0.1:0"]
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(hypercorn_serve, app, hc)
            async with httpx2.AsyncClient(base_url=binds[0], timeout=None) as client:
                try:
                    response = await client.get("/slow")
                    body = response.content
                except httpx2.HTTPError:
                    body = b"<cut>"
            nursery.cancel_scope.cancel()
        return body

    assert await fetch(None) == b"first last"
    assert await fetch(60) != b"first last"


async def _start_dev(
    port: int, env: dict[str, str], cwd: Path, stderr: Path
) -> tuple[trio.Process, bytes]:
    """`privchat dev --port PORT` (default data dir); returns the process and its banner."""
    cwd.mkdir(exist_ok=True)
    with stderr.open("ab") as err:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "privchat", "dev", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=cwd,
        )
    assert proc.stdout is not None
    banner = b""
    try:
        with trio.fail_after(30):
            while b"stop " not in banner:
                chunk = await proc.stdout.receive_some(65536)
                assert chunk, banner
                banner += chunk
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, banner


async def _stop(proc: trio.Process) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_dev_answers_health_within_30s_and_keeps_chats_across_restarts(
    tmp_path: Path,
) -> None:
    """`privchat dev` on a machine with no PostgreSQL configured: embedded database, fake upstream,
    data in the per-user data dir (wherever it is started from), kept across a restart."""
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "OPENAI_", "DEV", "XDG_"))
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    stderr = tmp_path / "stderr.log"
    base = f"http://127.0.0.1:{port}"
    proc, banner = await _start_dev(port, env, tmp_path / "here", stderr)
    try:
        with trio.fail_after(30):
            async with httpx2.AsyncClient(base_url=base) as client:
                assert (await client.get("/health")).status_code == 200
                login = await client.post("/v1/auth/mock-login", json={"email": "dev@example.com"})
                assert login.status_code == 200
                h = {"authorization": f"Bearer {login.json()['token']}"}
                item = {"type": "message", "role": "user", "content": "kept"}
                created = await client.post("/v1/conversations", json={"items": [item]}, headers=h)
                assert created.status_code in (200, 201), created.text
                conv_id = created.json()["id"]
    finally:
        await _stop(proc)
    data_dir = tmp_path / "xdg" / "privchat"
    assert b"embedded (pgserver)" in banner and b"privchat-dev/echo" in banner
    assert str(data_dir).encode() in banner
    assert (data_dir / "fake-cloud.sqlite3").is_file() and (data_dir / "pgdata").is_dir()

    proc, _ = await _start_dev(port, env, tmp_path / "elsewhere", stderr)
    try:
        with trio.fail_after(30):
            async with httpx2.AsyncClient(base_url=base) as client:
                login = await client.post("/v1/auth/mock-login", json={"email": "dev@example.com"})
                h = {"authorization": f"Bearer {login.json()['token']}"}
                listed = await client.get("/v1/conversations", headers=h)
                assert [c["id"] for c in listed.json()] == [conv_id], listed.text
                items = await client.get(f"/v1/conversations/{conv_id}/items", headers=h)
                assert [i["content"][0]["text"] for i in items.json()["data"]] == ["kept"]
    finally:
        await _stop(proc)
    logged = stderr.read_text()
    assert "Warning" not in logged and "XDG_RUNTIME_DIR" not in logged, logged


def test_dev_on_a_terminal_prints_the_banner_apart_from_the_json_logs(tmp_path: Path) -> None:
    """stderr is a terminal: the banner goes there, in one piece; every other line is one JSON
    log object; no library warning."""
    import json
    import pty
    import select
    import time

    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "OPENAI_", "DEV", "XDG_"))
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "privchat", "dev", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"stop " not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
            if ready:
                seen += os.read(master, 65536)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.stdout is not None and proc.stdout.read() == b""  # nothing on stdout
    text = seen.decode().replace("\r\n", "\n")
    banner_lines = 0
    for line in text.splitlines():
        if line.startswith("{"):
            json.loads(line)  # one whole JSON object per line
        elif line.strip():
            banner_lines += 1
            assert line.startswith(("privchat dev is running", "  ")), line
    assert banner_lines >= 6 and "privchat dev is running" in text
    assert "Warning" not in text and "XDG_RUNTIME_DIR" not in text
