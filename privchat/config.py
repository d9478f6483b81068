"""Every environment variable privchat reads, typed and validated once at startup.

`load_config(environ)` returns a frozen `Config` or raises `ConfigError` whose message is one
line naming the variable and the problem. Nothing else in privchat reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

DEFAULT_CORS = "http://localhost:3000,https://near.ai,*.near.ai"
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "critical")


class ConfigError(Exception):
    """A variable is missing, malformed or unreadable; the message names it."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a number from {lo} to {hi}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 < value < 10**7:
        raise ValueError("expected a positive number of seconds")
    return value


def _seconds_or_zero(raw: str) -> float:
    try:
        zero = float(raw.strip()) == 0
    except ValueError:
        zero = False
    return 0.0 if zero else _seconds(raw)


def _url(raw: str) -> str:
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http(s) URL")
    return value


def _optional_url(raw: str) -> str | None:
    return _url(raw) if raw.strip() else None


def _url_list(raw: str) -> str | None:
    """One URL or several, comma-separated; kept as given (validated one by one)."""
    urls = [_url(item) for item in raw.split(",") if item.strip()]
    return ",".join(urls) or None


def _str(raw: str) -> str:
    return raw.strip()


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return value


def _optional_level(raw: str) -> str | None:
    return _level(raw) if raw.strip() else None


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    # The reference falls back to json for anything unknown; `pretty`/`compact` map to text.
    return "text" if value in ("text", "pretty", "compact") else "json"


def _path(raw: str) -> Path | None:
    return Path(raw.strip()) if raw.strip() else None


def _secret_file(raw: str) -> str:
    path = Path(raw.strip())
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Config:
    # server
    server_host: str = "0.0.0.0"
    server_port: int = 8081
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    keep_alive_timeout: float = 75.0
    access_log: bool = False
    shutdown_grace_seconds: float = 30.0
    shutdown_drain_seconds: float = 0.0
    max_upload_bytes: int = 512 * 1024 * 1024
    body_idle_timeout: float = 30.0
    dev: bool = False
    environment: str = "development"
    # database
    database_url: str | None = field(default=None, repr=False)
    database_host: str = "localhost"
    database_port: int = 5432
    database_name: str = "chat_api"
    database_user: str = "postgres"
    database_password: str = field(default="postgres", repr=False)
    database_max_connections: int = 10
    database_tls_enabled: bool = False
    database_tls_ca_cert_path: Path | None = None
    database_primary_app_id: str = ""
    gateway_subdomain: str = ""
    database_refresh_interval: float = 30.0
    database_wait_seconds: float = 30.0
    patroni_cluster_url: str | None = None
    database_migrations_path: Path | None = None
    # upstream
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str = field(default="", repr=False)
    vpc_shared_secret: str | None = field(default=None, repr=False)
    vpc_client_id: str = "chat-api-client"
    upstream_connect_timeout: float = 10.0
    upstream_idle_timeout: float = 300.0
    # identity
    google_client_id: str = ""
    google_client_secret: str = field(default="", repr=False)
    github_client_id: str = ""
    github_client_secret: str = field(default="", repr=False)
    google_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_userinfo_url: str = "https://www.googleapis.com/oauth2/v2/userinfo"
    github_authorize_url: str = "https://github.com/login/oauth/authorize"
    github_token_url: str = "https://github.com/login/oauth/access_token"
    github_api_url: str = "https://api.github.com"
    redirect_uri: str = "http://localhost:8080"
    frontend_url: str = "http://localhost:3000"
    near_rpc_url: str = "https://free.rpc.fastnear.com"
    near_expected_recipient: str = "private.near.ai"
    auth_admin_domains: tuple[str, ...] = ()
    cors_allowed_origins: tuple[str, ...] = _csv(DEFAULT_CORS)
    session_cache_seconds: float = 60.0
    # frontend
    frontend_dir: Path = Path("crates/api/frontend/dist")
    # attestation
    dstack_simulator_endpoint: str | None = None
    # observability
    log_level: str = "info"
    log_format: str = "json"
    log_module_levels: tuple[tuple[str, str], ...] = ()
    telemetry_service_name: str = "chat-api"
    telemetry_otlp_endpoint: str | None = None

    @property
    def vpc_enabled(self) -> bool:
        return self.vpc_shared_secret is not None

    @property
    def admin_domains(self) -> frozenset[str]:
        return frozenset(d.lower() for d in self.auth_admin_domains)

    @property
    def patroni_enabled(self) -> bool:
        if self.patroni_cluster_url and "," in self.patroni_cluster_url:
            return True  # a list of members' REST APIs is a cluster on its own
        return self.database_primary_app_id not in ("", "postgres-test")

    def database_dsn(
        self, host: str | None = None, port: int | None = None, *, hosts: tuple = ()
    ) -> str:
        """The DSN of the configured server, of `host:port` (a Patroni leader), or of several
        `(host, port)` pairs (every cluster member, for `target_session_attrs`)."""
        if self.database_url and host is None and not hosts:
            return self.database_url
        user = quote(self.database_user, safe="")
        password = quote(self.database_password, safe="")
        netloc = ",".join(f"{h}:{p}" for h, p in hosts) or (
            f"{host or self.database_host}:{port or self.database_port}"
        )
        return f"postgresql://{user}:{password}@{netloc}/{quote(self.database_name, safe='')}"

    def database_target(self) -> str:
        """host:port/db for logs, without credentials."""
        if self.database_url:
            parts = urlsplit(self.database_url)
            return f"{parts.hostname}:{parts.port or 5432}{parts.path}"
        return f"{self.database_host}:{self.database_port}/{self.database_name}"


# (environment variable, Config field, parser). Order only matters for the error shown first.
_VARIABLES: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("SERVER_HOST", "server_host", _str),
    ("SERVER_PORT", "server_port", _int(0, 65535)),
    ("TLS_CERT_FILE", "tls_cert_file", _path),
    ("TLS_KEY_FILE", "tls_key_file", _path),
    ("KEEP_ALIVE_TIMEOUT_SECONDS", "keep_alive_timeout", _seconds),
    ("ACCESS_LOG", "access_log", _bool),
    ("SHUTDOWN_GRACE_SECONDS", "shutdown_grace_seconds", _seconds),
    ("SHUTDOWN_DRAIN_SECONDS", "shutdown_drain_seconds", _seconds_or_zero),
    ("MAX_UPLOAD_BYTES", "max_upload_bytes", _int(1, 2**40)),
    ("REQUEST_BODY_IDLE_TIMEOUT_SECONDS", "body_idle_timeout", _seconds),
    ("DEV", "dev", _bool),
    ("ENVIRONMENT", "environment", _str),
    ("DATABASE_URL", "database_url", lambda raw: raw.strip() or None),
    ("DATABASE_HOST", "database_host", _str),
    ("DATABASE_PORT", "database_port", _int(1, 65535)),
    ("DATABASE_NAME", "database_name", _str),
    ("DATABASE_USER", "database_user", _str),
    ("DATABASE_PASSWORD", "database_password", lambda raw: raw),
    ("DATABASE_PASSWORD_FILE", "database_password", _secret_file),
    ("DATABASE_MAX_CONNECTIONS", "database_max_connections", _int(1, 1000)),
    ("DATABASE_TLS_ENABLED", "database_tls_enabled", _bool),
    ("DATABASE_TLS_CA_CERT_PATH", "database_tls_ca_cert_path", _path),
    ("DATABASE_PRIMARY_APP_ID", "database_primary_app_id", _str),
    ("GATEWAY_SUBDOMAIN", "gateway_subdomain", _str),
    ("DATABASE_REFRESH_INTERVAL", "database_refresh_interval", _seconds),
    ("DATABASE_WAIT_SECONDS", "database_wait_seconds", _seconds_or_zero),
    ("PATRONI_CLUSTER_URL", "patroni_cluster_url", _url_list),
    ("DATABASE_MIGRATIONS_PATH", "database_migrations_path", _path),
    ("OPENAI_BASE_URL", "openai_base_url", _url),
    ("OPENAI_API_KEY", "openai_api_key", _str),
    ("OPENAI_API_KEY_FILE", "openai_api_key", _secret_file),
    ("VPC_SHARED_SECRET_FILE", "vpc_shared_secret", _secret_file),
    ("VPC_CLIENT_ID", "vpc_client_id", _str),
    ("UPSTREAM_CONNECT_TIMEOUT_SECONDS", "upstream_connect_timeout", _seconds),
    ("UPSTREAM_IDLE_TIMEOUT_SECONDS", "upstream_idle_timeout", _seconds),
    ("GOOGLE_CLIENT_ID", "google_client_id", _str),
    ("GOOGLE_CLIENT_SECRET", "google_client_secret", _str),
    ("GITHUB_CLIENT_ID", "github_client_id", _str),
    ("GITHUB_CLIENT_SECRET", "github_client_secret", _str),
    ("GOOGLE_AUTHORIZE_URL", "google_authorize_url", _url),
    ("GOOGLE_TOKEN_URL", "google_token_url", _url),
    ("GOOGLE_USERINFO_URL", "google_userinfo_url", _url),
    ("GITHUB_AUTHORIZE_URL", "github_authorize_url", _url),
    ("GITHUB_TOKEN_URL", "github_token_url", _url),
    ("GITHUB_API_URL", "github_api_url", _url),
    ("REDIRECT_URI", "redirect_uri", _url),
    ("FRONTEND_URL", "frontend_url", _url),
    ("NEAR_RPC_URL", "near_rpc_url", _url),
    ("NEAR_EXPECTED_RECIPIENT", "near_expected_recipient", _str),
    ("AUTH_ADMIN_DOMAINS", "auth_admin_domains", _csv),
    ("CORS_ALLOWED_ORIGINS", "cors_allowed_origins", _csv),
    ("SESSION_CACHE_SECONDS", "session_cache_seconds", _seconds_or_zero),
    ("FRONTEND_DIR", "frontend_dir", lambda raw: Path(raw.strip())),
    ("DSTACK_SIMULATOR_ENDPOINT", "dstack_simulator_endpoint", lambda raw: raw.strip() or None),
    ("LOG_LEVEL", "log_level", _level),
    ("LOG_FORMAT", "log_format", _log_format),
    ("TELEMETRY_SERVICE_NAME", "telemetry_service_name", _str),
    ("TELEMETRY_OTLP_ENDPOINT", "telemetry_otlp_endpoint", _optional_url),
)

_MODULE_LEVELS = (
    ("LOG_MODULE_API", "privchat.api"),
    ("LOG_MODULE_SERVICES", "privchat.services"),
    ("LOG_MODULE_DATABASE", "privchat.store"),
)


def load_config(environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build the configuration from `environ` (default: the process environment).

    Keyword overrides win over the environment; tests use them. Raises `ConfigError`.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, attr, parse in _VARIABLES:
        raw = env.get(name)
        if raw is None:
            continue
        try:
            values[attr] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    modules = []
    for name, logger in _MODULE_LEVELS:
        if env.get(name):
            try:
                modules.append((logger, _level(env[name])))
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    values["log_module_levels"] = tuple(modules)
    values.update(overrides)
    config = Config(**values)
    _check(config, env)
    return config


def _check(config: Config, env: Mapping[str, str]) -> None:
    if (config.tls_cert_file is None) != (config.tls_key_file is None):
        raise ConfigError("TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE must be set together")
    for name, path in (
        ("TLS_CERT_FILE", config.tls_cert_file),
        ("TLS_KEY_FILE", config.tls_key_file),
    ):
        if path is not None and not path.is_file():
            raise ConfigError(f"{name}: no such file {path}")
    if config.vpc_enabled and "OPENAI_BASE_URL" not in env and "openai_base_url" not in env:
        raise ConfigError("OPENAI_BASE_URL: required when VPC_SHARED_SECRET_FILE is set")
    if config.patroni_enabled and not (config.patroni_cluster_url or config.gateway_subdomain):
        raise ConfigError(
            "GATEWAY_SUBDOMAIN: required when DATABASE_PRIMARY_APP_ID names a cluster"
        )
    if config.database_url and urlsplit(config.database_url).scheme not in (
        "postgres",
        "postgresql",
    ):
        raise ConfigError("DATABASE_URL: expected a postgresql:// URL")


def require_upstream_key(config: Config) -> None:
    """Serving needs a key for the upstream: a static one, or VPC login."""
    if not config.openai_api_key and not config.vpc_enabled:
        raise ConfigError(
            "OPENAI_API_KEY: empty; set your NEAR AI Cloud API key (or OPENAI_API_KEY_FILE, or "
            "VPC_SHARED_SECRET_FILE), or run `privchat dev` to work locally without one"
        )


def patroni_urls(config: Config) -> list[str]:
    """The Patroni REST endpoints to ask, in order: PATRONI_CLUSTER_URL (comma-separated), or
    the gateway address of DATABASE_PRIMARY_APP_ID."""
    if config.patroni_cluster_url:
        return config.patroni_cluster_url.split(",")
    return [f"https://{config.database_primary_app_id}-8008.{config.gateway_subdomain}/cluster"]
