"""Configuration: defaults, parsing, and one-line startup errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from privchat.config import ConfigError, load_config


def test_defaults() -> None:
    config = load_config({})
    assert config.server_host == "0.0.0.0" and config.server_port == 8081
    assert config.database_dsn() == "postgresql://postgres:postgres@localhost:5432/chat_api"
    assert config.openai_base_url == "https://api.openai.com/v1"
    assert config.cors_allowed_origins == ("http://localhost:3000", "https://near.ai", "*.near.ai")
    assert config.upstream_connect_timeout == 10 and config.upstream_idle_timeout == 300
    assert config.shutdown_grace_seconds == 30 and not config.dev and not config.vpc_enabled
    assert config.body_idle_timeout == 30 and config.max_upload_bytes == 512 * 1024 * 1024
    assert load_config({"REQUEST_BODY_IDLE_TIMEOUT_SECONDS": "2.5"}).body_idle_timeout == 2.5


def test_parsing(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("  s3cret\n")
    config = load_config(
        {
            "DEV": "true",
            "SERVER_PORT": "9000",
            "DATABASE_PASSWORD": "ignored",
            "DATABASE_PASSWORD_FILE": str(secret),
            "AUTH_ADMIN_DOMAINS": " Admin.org, ,example.com ",
            "LOG_FORMAT": "weird",
            "LOG_MODULE_DATABASE": "debug",
            "SESSION_CACHE_SECONDS": "0",
        }
    )
    assert config.session_cache_seconds == 0
    assert config.dev and config.server_port == 9000
    assert config.database_password == "s3cret"
    assert config.admin_domains == {"admin.org", "example.com"}
    assert config.log_format == "json"  # unknown formats fall back to json, like the reference
    assert config.log_module_levels == (("privchat.store", "debug"),)
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SERVER_PORT": "eighty"}, "SERVER_PORT"),
        ({"SERVER_PORT": "70000"}, "SERVER_PORT"),
        ({"DEV": "maybe"}, "DEV"),
        ({"NEAR_RPC_URL": "not a url"}, "NEAR_RPC_URL"),
        ({"DATABASE_PASSWORD_FILE": "/nonexistent/pw"}, "DATABASE_PASSWORD_FILE"),
        ({"OPENAI_API_KEY_FILE": "/nonexistent/key"}, "OPENAI_API_KEY_FILE"),
        ({"UPSTREAM_IDLE_TIMEOUT_SECONDS": "-1"}, "UPSTREAM_IDLE_TIMEOUT_SECONDS"),
        ({"SESSION_CACHE_SECONDS": "-5"}, "SESSION_CACHE_SECONDS"),
        ({"REQUEST_BODY_IDLE_TIMEOUT_SECONDS": "soon"}, "REQUEST_BODY_IDLE_TIMEOUT_SECONDS"),
        ({"TLS_CERT_FILE": "/x.pem"}, "TLS_CERT_FILE"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_config(env)


def test_vpc_requires_base_url(tmp_path: Path) -> None:
    secret = tmp_path / "vpc"
    secret.write_text("shh")
    with pytest.raises(ConfigError, match="^OPENAI_BASE_URL: required"):
        load_config({"VPC_SHARED_SECRET_FILE": str(secret)})


def test_cli_prints_one_line_without_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SERVER_"))}
    env["SERVER_PORT"] = "not-a-port"
    result = subprocess.run(
        [sys.executable, "-m", "privchat", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "privchat: configuration error: SERVER_PORT: expected a whole number"
    )
    assert "Traceback" not in result.stderr
