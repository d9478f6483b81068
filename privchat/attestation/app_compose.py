"""The deployment descriptors that tie an image digest to a TEE quote.

`docker_compose(image)` is the compose file of a deployment (privchat pinned by digest),
`app_compose(compose)` wraps it in dstack's app-compose, serialised exactly as dstack hashes it
(`dstack_sdk.get_compose_hash`: keys sorted, compact, UTF-8), so SHA-256 of the file's bytes is the
compose hash the CVM measures into RTMR3. `images(compose)` reads back the images a compose file
runs, which the verifier compares against the digest a user built.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dstack_sdk.get_compose_hash import get_compose_hash

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
PINNED = re.compile(r"^(?P<name>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
_IMAGE_LINE = re.compile(r"^\s*(?:-\s*)?image:\s*(?P<ref>.*?)\s*(?:#.*)?$", re.M)
DEFAULT_IMAGE = "docker.io/nearai/privchat"


class DescriptorError(ValueError):
    """A descriptor or digest that cannot be used; the message is one line for the user."""


def check_digest(value: str) -> str:
    if not DIGEST.fullmatch(value):
        raise DescriptorError(f"not an image digest (sha256:<64 lowercase hex>): {value!r}")
    return value


def single_host_compose(image: str, postgres_image: str) -> str:
    """deploy/docker-compose.yml: privchat by digest and its PostgreSQL, for one host."""
    return f"""\
# privchat on a single host: the image pinned by digest, and PostgreSQL.
# Rendered by scripts/render-deploy.py for one image digest; secrets come from .env.
services:
  privchat:
    image: {image}
    restart: unless-stopped
    env_file: .env
    environment:
      DATABASE_HOST: postgres
      DATABASE_PORT: "5432"
      SERVER_HOST: 0.0.0.0
      SERVER_PORT: "8081"
    ports:
      - "8081:8081"
    stop_grace_period: 40s
    depends_on:
      postgres:
        condition: service_healthy
  postgres:
    image: {postgres_image}
    restart: unless-stopped
    environment:
      POSTGRES_DB: ${{DATABASE_NAME:-privchat}}
      POSTGRES_USER: ${{DATABASE_USER:-privchat}}
      POSTGRES_PASSWORD: ${{DATABASE_PASSWORD:?set DATABASE_PASSWORD in .env}}
    volumes:
      - pgdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U $${{POSTGRES_USER}}"]
      interval: 5s
      retries: 12
volumes:
  pgdata: {{}}
"""


def tee_compose(image: str) -> str:
    """The compose file inside the app-compose: privchat only (its database is outside the
    CVM), attested through the dstack socket. Configuration comes from dstack's encrypted
    environment: each allowed variable is passed through by name, and stays unset when not set."""
    passed = "".join(f"      - {name}\n" for name in ALLOWED_ENVS)
    return f"""\
services:
  privchat:
    image: {image}
    restart: always
    ports:
      - "8081:8081"
    volumes:
      - /var/run/dstack.sock:/var/run/dstack.sock
    environment:
{passed}    stop_grace_period: 40s
"""


# What a deployer may set through dstack's encrypted environment (names only are attested).
ALLOWED_ENVS = [
    "DATABASE_URL",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
    "DATABASE_TLS_ENABLED",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "VPC_CLIENT_ID",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "REDIRECT_URI",
    "FRONTEND_URL",
    "CORS_ALLOWED_ORIGINS",
    "AUTH_ADMIN_DOMAINS",
]


def app_compose(compose: str, name: str = "privchat") -> str:
    """dstack's app-compose.json for `compose`, byte for byte what dstack hashes."""
    document: dict[str, Any] = {
        "manifest_version": 2,
        "name": name,
        "runner": "docker-compose",
        "docker_compose_file": compose,
        "kms_enabled": True,
        "gateway_enabled": True,
        "public_logs": False,
        "public_sysinfo": True,
        "public_tcbinfo": True,
        "local_key_provider_enabled": False,
        "allowed_envs": ALLOWED_ENVS,
        "no_instance_id": False,
        "secure_time": True,
    }
    text = json.dumps(_sorted(document), separators=(",", ":"), ensure_ascii=False)
    assert compose_hash(text) == get_compose_hash(json.loads(text))
    return text


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def compose_hash(app_compose_text: str) -> str:
    """The compose hash dstack measures: SHA-256 of the app-compose file's bytes."""
    import hashlib

    return hashlib.sha256(app_compose_text.encode("utf-8")).hexdigest()


def images(compose: str) -> list[str]:
    """The image references a compose file names, in order (quotes removed)."""
    return [m.group("ref").strip("'\"") for m in _IMAGE_LINE.finditer(compose)]


def compose_of(app_compose_text: str) -> str:
    """The docker compose file inside an app-compose document."""
    try:
        document = json.loads(app_compose_text)
    except ValueError as exc:
        raise DescriptorError(f"app-compose is not JSON ({exc})") from None
    compose = document.get("docker_compose_file") if isinstance(document, dict) else None
    if not isinstance(compose, str):
        raise DescriptorError("app-compose has no docker_compose_file")
    return compose


def runs_exactly(app_compose_text: str, digest: str) -> str | None:
    """None when the compose inside runs images pinned by digest only, one of them `digest`;
    else the one-line reason."""
    compose = compose_of(app_compose_text)
    if re.search(r"^\s*build:", compose, re.M):
        return "the compose builds an image instead of naming one by digest"
    refs = images(compose)
    if not refs:
        return "the compose names no image"
    for ref in refs:
        if not PINNED.match(ref):
            return f"the compose names {ref!r} by tag, not by digest"
    if not any(PINNED.match(ref).group("digest") == digest for ref in refs):  # type: ignore[union-attr]
        return f"the compose runs {', '.join(refs)}, not {digest}"
    return None
