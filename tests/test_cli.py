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
