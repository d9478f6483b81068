"""`GET /v1/attestation/report` (api.md §2.9, D14): privchat's own TDX quote next to the upstream
gateway's and the model attestations.

The client's `nonce` (64 hex chars, else 400) goes upstream; privchat's quote binds
report_data = SHA-256(SPKI of the TLS certificate it serves, or 32 zero bytes) ‖ the client's
nonce, or the nonce upstream echoed when the client sent none. `tls_spki_sha256` in
`chat_api_gateway_attestation` says which binding the quote carries (hex, or null).
Every step has a deadline; failures map to 502 / 503 / 500 E-API as in the reference, except
that a report for a model the upstream does not know is 404 (deviation A4).
`signing_algo` is not checked here: upstream rejects an unknown one, which becomes 503.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote, urlencode

import trio
from quart import Blueprint, Response, request

from ..attestation.report_data import parse_nonce
from ..attestation.service import AttestationError
from ..errors import ApiError, json_response
from ..services.registry import opened, services
from ..upstream.client import UpstreamError, get_upstream

log = logging.getLogger(__name__)

bp = Blueprint("attestation", __name__)

FORWARDED_PARAMS = ("model", "signing_algo", "nonce", "signing_address")
UPSTREAM_DEADLINE = 30.0  # seconds for the whole upstream attestation fetch
MODEL_CHECK_DEADLINE = 5.0  # seconds for asking whether a failed report's model exists


@bp.get("/v1/attestation/report")
async def attestation_report() -> Response:
    """TEE attestation report of privchat and its upstream, bound to your nonce."""
    params = {name: request.args[name] for name in FORWARDED_PARAMS if name in request.args}
    client_nonce: bytes | None = None
    if "nonce" in params:
        try:
            client_nonce = parse_nonce(params["nonce"])
        except ValueError:
            raise ApiError(400, "Invalid nonce format: expected 64 hex characters") from None
    body = await _fetch_upstream(urlencode(params).encode("ascii"))
    gateway, models = _parse_upstream(body)
    upstream_nonce = _upstream_nonce(gateway["request_nonce"])
    nonce = client_nonce if client_nonce is not None else upstream_nonce
    if client_nonce is not None and upstream_nonce != client_nonce:
        # The upstream report is stale or not for this request; the verifier flags it.
        log.warning("upstream attestation echoed another nonce")
    attestor = opened(services().attestation, "attestation")
    try:
        own = await attestor.attest(nonce)
    except AttestationError as exc:
        raise ApiError(500, exc.message) from None
    mine: dict[str, Any] = {"intel_quote": own.intel_quote}
    if own.event_log is not None:
        mine["event_log"] = own.event_log
    mine["request_nonce"] = nonce.hex()
    if own.info is not None:
        mine["info"] = own.info
    mine["tls_spki_sha256"] = attestor.binding.hex() if attestor.binding is not None else None
    if own.mock:
        mine["mock"] = True
    out: dict[str, Any] = {
        "chat_api_gateway_attestation": mine,
        "cloud_api_gateway_attestation": gateway,
    }
    if models is not None:
        out["model_attestations"] = models
    return json_response(out)


async def _fetch_upstream(query: bytes) -> bytes:
    """The upstream report body; 502 on transport failure or deadline, 503 on non-2xx."""
    with trio.move_on_after(UPSTREAM_DEADLINE) as deadline:
        try:
            response = await get_upstream().call("GET", "attestation/report", query=query)
        except UpstreamError as exc:
            raise ApiError(
                502, f"Failed to fetch attestation report: API error: {exc.message}"
            ) from None
    if deadline.cancelled_caught:
        raise ApiError(502, "Failed to fetch attestation report: API error: timed out")
    if not 200 <= response.status_code < 300:
        log.warning("upstream attestation error", extra={"status": response.status_code})
        model = request.args.get("model")
        if model and await _model_unknown(model):
            raise ApiError(404, f"Model '{model}' not found")
        raise ApiError(503, f"Attestation service returned error: {response.status_code}")
    try:
        return response.content
    except Exception as exc:  # the body was read by `call`; kept for the reference's 500
        raise ApiError(500, f"Failed to read response body: {exc}") from None


async def _model_unknown(model: str) -> bool:
    """Does the upstream say it has no such model? Asked only after the report failed, so an
    unknown model is the caller's 404, not the service's 503."""
    with trio.move_on_after(MODEL_CHECK_DEADLINE):
        try:
            response = await get_upstream().call("GET", f"model/{quote(model, safe='')}")
        except UpstreamError:
            return False
        return response.status_code == 404
    return False


def _require_str(obj: dict[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ApiError(
            500, f"Failed to parse attestation report: {where}.{name}: expected a string"
        )
    return value


def _known(obj: dict[str, Any], required: tuple[str, ...], where: str) -> dict[str, Any]:
    """Only the fields the reference keeps; optional ones dropped when null or absent."""
    out: dict[str, Any] = {name: _require_str(obj, name, where) for name in required}
    for name in ("event_log", "info"):
        if obj.get(name) is not None:
            out[name] = obj[name]
    return out


def _parse_upstream(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ApiError(500, f"Failed to parse attestation report: {exc}") from None
    gateway = data.get("gateway_attestation") if isinstance(data, dict) else None
    if not isinstance(gateway, dict):
        raise ApiError(500, "Failed to parse attestation report: missing gateway_attestation")
    gateway_out = _known(gateway, ("intel_quote", "request_nonce"), "gateway_attestation")
    # Field order of the reference: intel_quote, event_log, request_nonce, info.
    ordered = {
        k: gateway_out[k]
        for k in ("intel_quote", "event_log", "request_nonce", "info")
        if k in gateway_out
    }
    models = data.get("model_attestations")
    if models is None:
        return ordered, None
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise ApiError(
            500, "Failed to parse attestation report: model_attestations: expected a list"
        )
    required = ("signing_address", "intel_quote", "nvidia_payload")
    return ordered, [_known(m, required, "model_attestations[]") for m in models]


def _upstream_nonce(text: str) -> bytes:
    try:
        nonce = bytes.fromhex(text)
    except ValueError as exc:
        raise ApiError(500, f"Invalid nonce format: {exc}") from None
    if len(nonce) != 32:
        raise ApiError(500, f"Invalid nonce format: expected 32 bytes, got {len(nonce)}")
    return nonce
