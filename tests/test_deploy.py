"""The deployment descriptors (deploy/) and scripts/render-deploy.py: privchat pinned by digest,
app-compose serialised exactly as dstack hashes it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from dstack_sdk.get_compose_hash import get_compose_hash

from privchat.attestation.app_compose import PINNED, compose_of, images, runs_exactly

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "render-deploy.py"
DIGEST = "sha256:" + "5e" * 32


def render(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True)


def test_render_pins_the_digest_and_prints_dstacks_compose_hash(tmp_path: Path) -> None:
    done = render(DIGEST, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    raw = (tmp_path / "app-compose.json").read_bytes()
    printed = done.stdout.strip().splitlines()[-1]
    assert printed == hashlib.sha256(raw).hexdigest()
    assert printed == get_compose_hash(json.loads(raw))  # dstack's own serialisation
    compose = compose_of(raw.decode())
    assert images(compose) == [f"docker.io/nearai/privchat@{DIGEST}"]
    assert runs_exactly(raw.decode(), DIGEST) is None
    assert "/var/run/dstack.sock:/var/run/dstack.sock" in compose

    single = (tmp_path / "docker-compose.yml").read_text()
    privchat, postgres = images(single)
    assert privchat == f"docker.io/nearai/privchat@{DIGEST}"
    assert postgres.startswith("docker.io/library/postgres:")
    assert "DATABASE_HOST: postgres" in single and "condition: service_healthy" in single


def test_committed_descriptors_are_what_the_script_renders(tmp_path: Path) -> None:
    committed = (ROOT / "deploy" / "app-compose.json").read_text()
    (image,) = images(compose_of(committed))
    match = PINNED.match(image)
    assert match, image
    assert render(match["digest"], "--out", str(tmp_path)).returncode == 0
    for name in ("app-compose.json", "docker-compose.yml"):
        assert (tmp_path / name).read_text() == (ROOT / "deploy" / name).read_text(), name


def test_bad_input_is_one_line_and_non_zero(tmp_path: Path) -> None:
    for argv, message in [
        (["sha256:1234"], "not an image digest"),
        (["SHA256:" + "5E" * 32], "not an image digest"),
        ([DIGEST, "--image", "docker.io/nearai/privchat:latest@x"], "without tag or digest"),
        ([DIGEST, "--out", "/proc/no/such"], "render-deploy.py:"),
    ]:
        done = render(*argv, *(["--out", str(tmp_path)] if "--out" not in argv else []))
        assert done.returncode == 2, argv
        assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr, done.stderr
