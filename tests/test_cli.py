"""The `privchat` command line: subcommands and their own options."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privchat", *args], capture_output=True, text=True, timeout=60
    )


def test_help_lists_every_command() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "dev", "fake-cloud", "verify-attestation"):
        assert command in result.stdout


def test_delegated_commands_keep_their_options() -> None:
    fake = _run("fake-cloud", "--help")
    assert fake.returncode == 0 and "--port" in fake.stdout
    verify = _run("verify-attestation", "--help")
    assert verify.returncode == 0 and "--expect-compose-hash" in verify.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = _run("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_version() -> None:
    from privchat import __version__

    result = _run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"privchat {__version__}"


def test_each_command_help_says_what_it_does_and_points_to_env_example() -> None:
    for command, needle in (
        ("serve", "dstack guest agent"),
        ("migrate", "pending migrations"),
        ("dev", "embedded PostgreSQL"),
    ):
        result = _run(command, "--help")
        assert result.returncode == 0, command
        text = " ".join(result.stdout.split())
        assert needle in text and "env.example" in text, command
    dev = " ".join(_run("dev", "--help").stdout.split())
    assert "port to listen on" in dev and "where the embedded database" in dev
