"""`POST /v1/auth/near`: Sign in with NEAR, NEP-413 (api.md §2.2.3).

Body shape → 422/400 E-TEXT; conversions → 400 E-API; verification → 401 E-API without details.
The nonce is consumed only after the signature and the full-access key check passed.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2
from pydantic import RootModel
from quart import Response
from quart_schema import document_request, document_response

from ..auth import login, near_rpc, nep413
from ..errors import ApiError, TextError, json_response
from ..services.registry import Services, services
from ..store import nonces
from ..timefmt import ts_offset
from . import schemas
from .auth import bp
from .body import read_json

log = logging.getLogger(__name__)

RPC_TIME_LIMIT = 10.0


class _AnyJson(RootModel[Any]):
    pass


@bp.post("/near")
@document_response(schemas.NearSession)
@document_request(nep413.NearAuthBody)
async def near_sign_in() -> Response:
    """Sign in with NEAR: a NEP-413 signed message; returns a session token."""
    svc = services()
    raw = await read_json(_AnyJson)  # content type, size and JSON syntax
    try:
        signed = nep413.to_signed_login(nep413.parse_body(raw.root))
        await _verify(svc, signed)
    except nep413.NearBodyError as error:
        raise TextError(error.status, error.message) from None
    except nep413.NearBadRequest as error:
        raise ApiError(400, error.message) from None
    except nep413.NearUnauthorized as error:
        log.info("near sign-in refused", extra={"status": 401})
        raise ApiError(401, error.message) from None
    identity = login.Identity(
        "near",
        signed.account_id,
        f"{signed.account_id}@near",
        signed.account_id,
        None,
        link_by_email=False,
    )
    try:
        result = await login.sign_in(svc, identity)
    except login.LoginFailed as error:
        log.warning("near sign-in failed", extra={"reason": error.reason})
        raise ApiError(401, "Failed to create user") from None
    return json_response(
        {
            "token": result.session.token,
            "session_id": str(result.session.id),
            "expires_at": ts_offset(result.session.expires_at),
            "is_new_user": result.is_new_user,
        }
    )


async def _verify(svc: Services, signed: nep413.SignedLogin) -> None:
    """Steps 1-7 of §2.2.3, in order."""
    nep413.check_payload(signed.payload, svc.config.near_expected_recipient)
    try:
        await nonces.purge_old(svc.db)
    except Exception as error:
        log.warning("near nonce purge failed", extra={"error": type(error).__name__})
    nep413.check_timestamp(signed.payload.nonce)
    nep413.verify_signature(signed)
    async with httpx2.AsyncClient() as client:
        full_access = await near_rpc.is_full_access_key(
            client,
            svc.config.near_rpc_url,
            signed.account_id,
            str(signed.public_key),
            time_limit=RPC_TIME_LIMIT,
        )
    if not full_access:
        raise nep413.NearUnauthorized(nep413.INVALID_SIGNATURE)
    try:
        fresh = await nonces.consume(svc.db, nep413.nonce_hex(signed.payload.nonce))
    except Exception as error:
        log.error("near nonce store failed", extra={"error": type(error).__name__})
        raise nep413.NearUnauthorized("Failed to verify nonce") from None
    if not fresh:
        raise nep413.NearUnauthorized(nep413.NONCE_REUSED)
