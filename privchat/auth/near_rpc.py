"""NEAR JSON-RPC `query` calls: access-key permission and liquid account balance.

Each call is one POST of `{"jsonrpc": "2.0", "id": "dontcare", "method": "query", "params": ...}`
to the RPC URL over the `httpx2.AsyncClient` the caller owns, bounded by a Trio deadline of
`time_limit` seconds (default 10).
Failures are typed: `UnknownAccessKey`, `UnknownAccount`, or `NearRpcUnavailable` (transport
error, timeout, non-200, malformed answer, any other RPC error). All derive from `NearRpcError`.

nearcore reports errors two ways; both are understood:
- structured: `{"error": {"name": "HANDLER_ERROR", "cause": {"name": "UNKNOWN_ACCESS_KEY"}, ...}}`
- legacy: `{"result": {"error": "access key ed25519:... does not exist while viewing", ...}}`
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import httpx2
import trio

log = logging.getLogger(__name__)

Finality = Literal["optimistic", "final"]
DEFAULT_TIME_LIMIT = 10.0


class NearRpcError(Exception):
    """A `query` did not give an answer for the requested key or account."""


class UnknownAccessKey(NearRpcError):
    """The account has no such access key (or the account does not exist)."""


class UnknownAccount(NearRpcError):
    """The account does not exist."""


class NearRpcUnavailable(NearRpcError):
    """Transport error, deadline, HTTP error, malformed reply or an unexpected RPC error."""


@dataclass(frozen=True)
class FunctionCallPermission:
    receiver_id: str
    method_names: tuple[str, ...]
    allowance: int | None


AccessKeyPermission = Literal["FullAccess"] | FunctionCallPermission


async def _query(
    client: httpx2.AsyncClient, rpc_url: str, params: dict[str, Any], time_limit: float
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": "dontcare", "method": "query", "params": params}
    with trio.move_on_after(time_limit) as scope:
        try:
            response = await client.post(rpc_url, json=body, timeout=time_limit)
        except httpx2.HTTPError as error:
            raise NearRpcUnavailable(f"NEAR RPC request failed: {type(error).__name__}") from None
    if scope.cancelled_caught:
        raise NearRpcUnavailable(f"NEAR RPC did not answer within {time_limit:g} s")
    if response.status_code != 200:
        # nearcore answers JSON-RPC errors with 200 or, for some, 4xx/5xx and an error body.
        reply = _json_or_none(response)
        if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
            _raise_rpc_error(reply["error"])
        raise NearRpcUnavailable(f"NEAR RPC answered HTTP {response.status_code}")
    reply = _json_or_none(response)
    if not isinstance(reply, dict):
        raise NearRpcUnavailable("NEAR RPC answer is not a JSON object")
    if reply.get("error") is not None:
        error = reply["error"]
        _raise_rpc_error(error if isinstance(error, dict) else {"data": str(error)})
    result = reply.get("result")
    if not isinstance(result, dict):
        raise NearRpcUnavailable("NEAR RPC answer has no result object")
    if isinstance(result.get("error"), str):
        _raise_legacy_error(result["error"])
    return result


def _json_or_none(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _raise_rpc_error(error: dict[str, Any]) -> None:
    cause = error.get("cause")
    name = cause.get("name") if isinstance(cause, dict) else None
    if name == "UNKNOWN_ACCESS_KEY":
        raise UnknownAccessKey("access key does not exist")
    if name == "UNKNOWN_ACCOUNT":
        raise UnknownAccount("account does not exist")
    data = error.get("data")
    if name is None and isinstance(data, str):
        _raise_legacy_error(data)
    raise NearRpcUnavailable(f"NEAR RPC error: {name or error.get('name') or 'unknown'}")


def _raise_legacy_error(text: str) -> None:
    lowered = text.lower()
    if "access key" in lowered and (
        "does not exist" in lowered or "never been observed" in lowered
    ):
        raise UnknownAccessKey("access key does not exist")
    if "account" in lowered and "does not exist" in lowered:
        raise UnknownAccount("account does not exist")
    raise NearRpcUnavailable("NEAR RPC error: unknown")


def _permission(value: Any) -> AccessKeyPermission:
    if value == "FullAccess":
        return "FullAccess"
    if isinstance(value, dict) and isinstance(value.get("FunctionCall"), dict):
        call = value["FunctionCall"]
        allowance = call.get("allowance")
        names = call.get("method_names") or []
        if not isinstance(call.get("receiver_id"), str) or not isinstance(names, list):
            raise NearRpcUnavailable("NEAR RPC answer has a malformed FunctionCall permission")
        try:
            amount = None if allowance is None else int(allowance)
        except (TypeError, ValueError):
            raise NearRpcUnavailable("NEAR RPC answer has a malformed allowance") from None
        return FunctionCallPermission(call["receiver_id"], tuple(map(str, names)), amount)
    raise NearRpcUnavailable("NEAR RPC answer has an unknown access-key permission")


async def view_access_key(
    client: httpx2.AsyncClient,
    rpc_url: str,
    account_id: str,
    public_key: str,
    *,
    finality: Finality = "optimistic",
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> AccessKeyPermission:
    """The permission of `public_key` (`ed25519:<base58>`) on `account_id`."""
    result = await _query(
        client,
        rpc_url,
        {
            "request_type": "view_access_key",
            "finality": finality,
            "account_id": account_id,
            "public_key": public_key,
        },
        time_limit,
    )
    return _permission(result.get("permission"))


async def is_full_access_key(
    client: httpx2.AsyncClient,
    rpc_url: str,
    account_id: str,
    public_key: str,
    *,
    finality: Finality = "optimistic",
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> bool:
    """True only for a `FullAccess` key; function-call keys, unknown keys and RPC errors are False."""
    try:
        permission = await view_access_key(
            client, rpc_url, account_id, public_key, finality=finality, time_limit=time_limit
        )
    except NearRpcError as error:
        log.info("NEAR key check failed: %s", type(error).__name__)
        return False
    return permission == "FullAccess"


async def view_account_balance(
    client: httpx2.AsyncClient,
    rpc_url: str,
    account_id: str,
    *,
    finality: Finality = "optimistic",
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> int:
    """The account's liquid balance (`result.amount`) in yoctoNEAR."""
    result = await _query(
        client,
        rpc_url,
        {"request_type": "view_account", "finality": finality, "account_id": account_id},
        time_limit,
    )
    amount = result.get("amount")
    if not isinstance(amount, str) or not (amount.isascii() and amount.isdigit()):
        raise NearRpcUnavailable("NEAR RPC answer has no decimal amount")
    return int(amount)
