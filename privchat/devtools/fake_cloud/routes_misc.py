"""Models, signature, attestation and VPC login routes (spec §1.1, §1.5, §5)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import uuid
from datetime import UTC, datetime

import trio

from . import attestation
from .http import Reply, Request, error, json_reply, plain
from .models import MODELS, find_model
from .signing import ALGOS, vpc_signature_ok
from .state import FakeCloud

_NONCE = re.compile(r"^[0-9a-fA-F]{64}$")


def _nonneg(params: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(params.get(name, default))
    except ValueError:
        value = -1
    if value < 0:
        raise error(400, f"Invalid {name}", "invalid_parameter", name)
    return value


async def model_list(fake: FakeCloud, req: Request) -> Reply:
    params = req.params
    limit, offset = _nonneg(params, "limit", 100), _nonneg(params, "offset", 0)
    page = MODELS[offset : offset + limit]
    return json_reply(200, {"models": page, "limit": limit, "offset": offset, "total": len(MODELS)})


async def model_get(fake: FakeCloud, req: Request, name: str) -> Reply:
    model = find_model(name)
    if model is None:
        raise error(404, f"Model '{name}' not found", "model_not_found")
    return json_reply(200, model)


def _algo(params: dict[str, str], default: str) -> str:
    algo = params.get("signing_algo", default).lower()
    if algo not in ALGOS:
        raise error(
            400,
            "Invalid signing_algo: must be 'ecdsa' or 'ed25519'",
            "invalid_request_error",
            "signing_algo",
        )
    return algo


async def signature(fake: FakeCloud, req: Request, chat_id: str) -> Reply:
    algo = _algo(req.params, "ecdsa")
    entry = fake.store.signatures.get(chat_id)
    if entry is None or trio.current_time() < entry.available_at:
        raise error(404, f"Signature not found: {chat_id}:{algo}", "not_found_error")
    if entry.text is None:
        return json_reply(
            200,
            {
                "error_code": "STREAM_DISCONNECTED",
                "message": "Verification not available due to disconnection.",
            },
        )
    return json_reply(200, fake.signer.signature_record(algo, entry.text))


async def attestation_report(fake: FakeCloud, req: Request) -> Reply:
    params = req.params
    raw_nonce = params.get("nonce")
    if raw_nonce is not None and not _NONCE.match(raw_nonce):
        raise error(
            400, "Invalid nonce: expected 64 hex characters", "invalid_request_error", "nonce"
        )
    nonce = bytes.fromhex(raw_nonce) if raw_nonce else os.urandom(32)
    algo = _algo(params, "ed25519")
    if params.get("provider", "near") not in ("near", "chutes"):
        raise error(400, "Invalid provider", "invalid_request_error", "provider")
    if fake.attestation_error is not None:
        status, message = fake.attestation_error
        raise error(status, message, "provider_error")
    model = params.get("model")
    found = find_model(model) if model else None
    if model and found is None:
        raise error(503, f"Model '{model}' not found", "provider_error")
    fingerprint = None
    if params.get("include_tls_fingerprint", "").lower() == "true":
        fingerprint = hashlib.sha256(b"privchat-fake-tls-spki").hexdigest()
    address = fake.signer.address(algo)
    gateway = attestation.gateway_attestation(address, algo, nonce, fingerprint)
    gateway.update(fake.attestation_extra)
    body: dict = {"gateway_attestation": gateway}
    if found is not None:
        body["model_attestations"] = [
            attestation.model_attestation(
                found["modelId"],
                fake.signer.address("ecdsa"),
                "ecdsa",
                fake.signer.ecdsa_key.public_key.format(compressed=False)[1:].hex(),
                nonce,
            )
        ]
    if fingerprint:
        body["tls_certificate"] = (
            "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"
        )
    return json_reply(200, body)


async def vpc_login(fake: FakeCloud, req: Request) -> Reply:
    try:
        body = json.loads(req.body)
    except ValueError as exc:
        raise plain(400, f"Failed to parse the request body as JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise plain(400, "Invalid request body")
    timestamp, sig, client_id = body.get("timestamp"), body.get("signature"), body.get("client_id")
    if not isinstance(timestamp, int) or not isinstance(sig, str) or not isinstance(client_id, str):
        raise plain(400, "timestamp, signature and client_id are required")
    if not client_id or len(client_id) > 256:
        raise plain(400, "client_id must be 1..256 characters")
    if not vpc_signature_ok(fake.vpc_secret, timestamp, sig, fake.clock()):
        raise plain(401, "Invalid VPC signature")
    api_key = "sk-" + secrets.token_hex(16)
    fake.api_keys.add(api_key)
    return json_reply(200, _login_body(api_key, client_id))


def _login_body(api_key: str, client_id: str) -> dict:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    user_id, org_id = str(uuid.uuid4()), str(uuid.uuid4())
    return {
        "access_token": "fake." + secrets.token_urlsafe(24) + ".jwt",
        "refresh_token": "rt_" + secrets.token_hex(16),
        "api_key": api_key,
        "session": {
            "id": str(uuid.uuid4()),
            "user_id": user_id,
            "token_hash": secrets.token_hex(32),
            "created_at": now,
            "expires_at": now,
            "ip_address": None,
            "user_agent": "VPC/1.0",
        },
        "organization": {
            "id": org_id,
            "name": f"vpc-{client_id}",
            "description": None,
            "owner_id": user_id,
            "settings": {},
            "is_active": True,
            "created_at": now,
            "updated_at": now,
        },
        "workspace": {
            "id": str(uuid.uuid4()),
            "name": "default",
            "description": None,
            "organization_id": org_id,
            "created_by_user_id": user_id,
            "created_at": now,
            "updated_at": now,
            "is_active": True,
            "settings": None,
        },
    }


async def not_implemented(fake: FakeCloud, req: Request, response_id: str = "") -> Reply:
    raise error(501, "Not implemented", "not_implemented", no_retry=True)
