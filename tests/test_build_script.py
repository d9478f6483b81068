"""scripts/build-image.sh on bad input: one line saying what is wrong, exit 2, nothing built."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "build-image.sh"
PINNED = "docker.io/library/python:3.11-slim-bookworm@sha256:" + "1f" * 32


def run(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out.tar"), *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def one_line(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_base_must_be_given_and_pinned(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BASE_IMAGE"}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    one_line(done, "set BASE_IMAGE")
    one_line(run(tmp_path, BASE_IMAGE="python:3.11-slim-bookworm"), "is not pinned")
    one_line(run(tmp_path, BASE_IMAGE="python@sha256:abc"), "is not pinned")


def test_frontend_needs_index_html(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "app.js").write_text("x")
    done = run(tmp_path, "--frontend-dist", str(tmp_path / "dist"), BASE_IMAGE=PINNED)
    one_line(done, f"frontend directory {tmp_path / 'dist'} has no index.html")
    one_line(run(tmp_path, "--frontend-version", "main", BASE_IMAGE=PINNED), "a full 40-hex commit")


def test_no_engine_says_what_to_install(tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # only what runs before the engine is looked for
    tools.mkdir()
    for tool in ("dirname", "realpath"):
        (tools / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
    done = subprocess.run(
        [shutil.which("bash"), str(SCRIPT)],  # type: ignore[list-item]
        env={"PATH": str(tools), "BASE_IMAGE": PINNED},
        capture_output=True,
        text=True,
    )
    one_line(done, "no container engine: install podman (apt-get install -y podman")


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_missing_local_base_is_one_line(tmp_path: Path) -> None:
    if shutil.which("skopeo") is None or os.geteuid() != 0:
        pytest.skip("needs skopeo and root, like the image build")
    done = run(tmp_path, BASE_IMAGE="localhost/privchat-base:does-not-exist")
    one_line(done, "base image localhost/privchat-base:does-not-exist does not exist here")
