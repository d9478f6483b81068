"""The image: built by scripts/build-image.sh from fresh clones on the debootstrap base, the same
digest twice, and run with podman against the real PostgreSQL and the fake cloud.

Needs root, podman, skopeo and debootstrap (.ci/run installs them); where podman cannot run the
tests skip and say why. The base is cached by scripts/base-image.sh (under /var/tmp), so only the
first run on a machine pays for debootstrap."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import trio

from .dbtools import empty_database
from .fakecloud_fixtures import API_KEY, JSON, parse_sse, start_fake_cloud, stream_body
from .test_lifecycle import _free_port, _wait_for_line

ROOT = Path(__file__).parent.parent
PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=8192:8192"]
BUDGET_BYTES = 400 * 1000 * 1000
SPA = "<!doctype html><title>privchat stand-in frontend</title>"


def _why_not() -> str | None:
    """None when images can be built and run here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, podman with the vfs driver)"
    for tool in ("podman", "skopeo", "debootstrap", "git"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs it with apt-get)"
    probe = subprocess.run([*PODMAN, "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"podman cannot run here: {(probe.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


@dataclass(frozen=True)
class Built:
    digest: str
    archive: Path
    tag: str
    seconds: float


def _build(base: str, workdir: Path, tag: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """A fresh clone of this repository's HEAD, built by its own build-image.sh."""
    clone = workdir / "clone"
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", head], check=True)
    return subprocess.run(
        [str(clone / "scripts" / "build-image.sh"), "--tag", tag, *extra],
        env={**os.environ, "BASE_IMAGE": base},
        capture_output=True,
        text=True,
        cwd=workdir,
    )


@pytest.fixture(scope="session")
def base_image() -> str:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    done = subprocess.run(
        [str(ROOT / "scripts" / "base-image.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def built(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    workdir = tmp_path_factory.mktemp("image-a")
    dist = workdir / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(SPA)
    (dist / "assets" / "app.js").write_text("console.log('stand-in')")
    tag = f"localhost/privchat-test:{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    done = _build(base_image, workdir, tag, "--frontend-dist", str(dist), "--out", "a.tar")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    digest = done.stdout.strip().splitlines()[-1]
    try:
        yield Built(digest, workdir / "a.tar", tag, seconds)
    finally:
        subprocess.run([*PODMAN, "rmi", "-f", tag], capture_output=True)


def test_two_fresh_clones_give_the_same_digest(
    built: Built, base_image: str, tmp_path: Path
) -> None:
    assert built.digest.startswith("sha256:") and len(built.digest) == 71
    dist = tmp_path / "dist"  # the same frontend bytes, written again
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(SPA)
    (dist / "assets" / "app.js").write_text("console.log('stand-in')")
    tag = f"localhost/privchat-test:{uuid.uuid4().hex[:8]}"
    try:
        done = _build(
            base_image,
            tmp_path,
            tag,
            "--frontend-dist",
            str(dist),
            "--out",
            "b.tar",
            "--compare",
            str(built.archive),
        )
    finally:
        subprocess.run([*PODMAN, "rmi", "-f", tag], capture_output=True)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == built.digest
    assert "reproduced" in done.stderr


def test_image_size_is_within_budget(built: Built) -> None:
    size = subprocess.run(
        [*PODMAN, "image", "inspect", "--format", "{{.Size}}", built.tag],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(size.stdout) <= BUDGET_BYTES, f"{int(size.stdout) / 1e6:.0f} MB"


async def test_image_serves_and_stops_cleanly_on_sigterm(
    built: Built, database_url: str, nursery: trio.Nursery
) -> None:
    """`privchat serve` in the container as the non-root user, against 127.0.0.1:5432 (its own
    database) and the fake cloud: health, the frontend, a mock-login, a streamed response; then
    SIGTERM ends it with exit 0 within the grace period."""
    fake, cloud_url = await start_fake_cloud(nursery)
    port = _free_port()
    name = f"privchat-test-{uuid.uuid4().hex[:8]}"
    grace = 10
    with empty_database(database_url) as url:
        env = {
            "DATABASE_URL": url,
            "OPENAI_BASE_URL": cloud_url,
            "OPENAI_API_KEY": API_KEY,
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": str(port),
            "SHUTDOWN_GRACE_SECONDS": str(grace),
            "DEV": "true",  # mock-login and the mock quote: no dstack agent here
        }
        argv = [*PODMAN, "run", "--rm", "--name", name, "--network", "host", *LIMITS]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        argv += [built.tag, "privchat", "serve"]
        proc = await trio.lowlevel.open_process(
            argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE
        )
        seen: list[str] = []
        try:
            with trio.fail_after(120):
                await _wait_for_line(proc, "privchat serving", seen)
            whoami = await trio.run_process(
                [*PODMAN, "exec", name, "id", "-un"], capture_stdout=True
            )
            assert whoami.stdout.decode().strip() == "app"
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                health = await c.get("/health")
                assert health.status_code == 200 and health.json()["status"] == "ok"
                page = await c.get("/chat/some-id")  # SPA fallback from the image's dist/
                assert page.status_code == 200 and page.text == SPA
                asset = await c.get("/assets/app.js")
                assert asset.text == "console.log('stand-in')"
                login = await c.post("/v1/auth/mock-login", json={"email": "img@example.com"})
                assert login.status_code == 200, login.text
                token = login.json()["token"]
                streamed = await c.post(
                    "/v1/responses",
                    content=stream_body(),
                    headers={"authorization": f"Bearer {token}", **JSON},
                )
                assert streamed.status_code == 200, streamed.text
                assert streamed.headers["content-type"].startswith("text/event-stream")
                types = [t for t, _ in parse_sse(streamed.content)]
                assert types[0] == "response.created" and types[-1] == "response.completed"
            assert fake.requests_to("/v1/responses"), "the stream came from the fake cloud"
            started = time.monotonic()
            await trio.run_process([*PODMAN, "kill", "--signal", "TERM", name])
            with trio.fail_after(grace + 10):
                code = await proc.wait()
            assert code == 0, "".join(seen)[-2000:]
            assert time.monotonic() - started < grace + 5
        finally:
            if proc.returncode is None:
                await trio.run_process(
                    [*PODMAN, "rm", "-f", name], check=False, capture_stdout=True
                )
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
