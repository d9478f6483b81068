"""Start-up failures say what to fix: one line, no traceback, exit 2 (configuration) or 1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from .dbtools import empty_database, query, with_database


def _privchat(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DEV", "SERVER_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "privchat", *args],
        env={**clean, "OPENAI_API_KEY": "sk-test", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line (the rest of stderr is log records), and no traceback."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("privchat: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unknown_database_host_names_the_variable(tmp_path: Path) -> None:
    result = _privchat(["migrate"], tmp_path, DATABASE_HOST="nope.invalid")
    line = _one_line(result)
    assert result.returncode == 1
    assert "'nope.invalid'" in line and "DATABASE_HOST" in line and "privchat dev" in line


def test_nothing_listening_names_host_and_port(tmp_path: Path, database_url: str) -> None:
    port = _closed_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/chat_api"
    result = _privchat(["serve"], tmp_path, DATABASE_URL=url, DEV="true")
    line = _one_line(result)
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in line and "DATABASE_URL" in line and "privchat dev" in line


def test_missing_database_says_how_to_create_it(tmp_path: Path, database_url: str) -> None:
    url = with_database(database_url, "privchat_no_such_db")
    result = _privchat(["serve"], tmp_path, DATABASE_URL=url, DEV="true")
    line = _one_line(result)
    assert result.returncode == 1
    assert '"privchat_no_such_db" does not exist' in line
    assert "createdb" in line and "privchat_no_such_db" in line.split("createdb", 1)[1]


def test_address_in_use_names_address_and_variable(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as taken, empty_database(database_url) as url:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _privchat(
            ["serve"],
            tmp_path,
            DATABASE_URL=url,
            DEV="true",
            SERVER_HOST="127.0.0.1",
            SERVER_PORT=str(port),
        )
    line = _one_line(result)
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in line and "already in use" in line and "SERVER_PORT" in line


def test_unusable_data_dir_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _privchat(["dev", "--data-dir", str(blocker / "sub")], tmp_path)
    line = _one_line(result)
    assert result.returncode == 2
    assert "--data-dir" in line and str(blocker / "sub") in line


def test_no_dstack_agent_stops_before_anything_is_written(
    tmp_path: Path, database_url: str
) -> None:
    with empty_database(database_url) as url:
        result = _privchat(
            ["serve"],
            tmp_path,
            DATABASE_URL=url,
            DSTACK_SIMULATOR_ENDPOINT=str(tmp_path / "no-agent.sock"),
        )
        tables = query(
            url, "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'"
        )
    line = _one_line(result)
    assert result.returncode == 2
    assert "DSTACK_SIMULATOR_ENDPOINT" in line and "DEV=true" in line
    assert tables[0]["n"] == 0  # no migration ran


def test_empty_upstream_key_is_a_configuration_error(tmp_path: Path) -> None:
    for args in (["serve"], ["dev", "--data-dir", str(tmp_path / "data")]):
        result = _privchat(
            args, tmp_path, OPENAI_API_KEY="", OPENAI_BASE_URL="https://cloud-api.near.ai/v1"
        )
        line = _one_line(result)
        assert result.returncode == 2, args
        assert "OPENAI_API_KEY" in line and "privchat dev" in line, args
    assert not (tmp_path / "data").exists()  # refused before the data directory was made


def test_no_patroni_endpoint_answering_is_one_line_and_exit_2(tmp_path: Path) -> None:
    urls = ",".join(f"http://127.0.0.1:{_closed_port()}/cluster" for _ in range(2))
    result = _privchat(
        ["serve"],
        tmp_path,
        PATRONI_CLUSTER_URL=urls,
        DATABASE_USER="privchat",
        DATABASE_PASSWORD="unused",
        DATABASE_NAME="privchat",
        DEV="true",
    )
    line = _one_line(result)
    assert result.returncode == 2, result.stderr
    assert line.startswith("privchat: PATRONI_CLUSTER_URL: no Patroni endpoint answered"), line
