"""A fake NEAR JSON-RPC node and a fake NEAR wallet that signs NEP-413 sign-in payloads.

Start the node in a test's nursery and point privchat's `NEAR_RPC_URL` at the base URL::

    fake = FakeNearRpc()
    rpc_url = await nursery.start(serve_fake_near_rpc, fake)
    wallet = FakeNearWallet("alice.near")          # fresh ed25519 key
    fake.add_key("alice.near", wallet.public_key)  # FullAccess unless told otherwise
    body = wallet.login_body(recipient="private.near.ai")   # the POST /v1/auth/near body

The node answers `query` with `view_access_key` and `view_account` the way nearcore does,
including its structured errors (`UNKNOWN_ACCESS_KEY`, `UNKNOWN_ACCOUNT`). The registry is
mutable during a test, every request body is recorded in `fake.requests`, and the knobs
`fail_status`, `rpc_error`, `hang` and `legacy_errors` simulate a broken node.

The wallet builds the signed bytes on its own (not with privchat's encoder), so tests
cross-check the implementation.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import base58
import nacl.signing
import trio

from . import FakeRequest, Reply, serve_handler

FULL_ACCESS = "FullAccess"
SIGN_IN_MESSAGE = "Sign in to NEAR AI Private Chat"
ONE_NEAR = 10**24
_BLOCK_HASH = "GkGhVbT1Sr1SPQTz5QnRuSDnqDqS5Pw9qSNsZ3oGwGmZ"


def function_call_permission(
    receiver_id: str = "app.near",
    method_names: tuple[str, ...] = (),
    allowance: int | None = 250_000_000_000_000_000_000_000,
) -> dict[str, Any]:
    return {
        "FunctionCall": {
            "allowance": None if allowance is None else str(allowance),
            "receiver_id": receiver_id,
            "method_names": list(method_names),
        }
    }


@dataclass
class FakeNearAccount:
    balance: int = 10 * ONE_NEAR
    keys: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeNearRpc:
    accounts: dict[str, FakeNearAccount] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)
    fail_status: int | None = None
    rpc_error: dict[str, Any] | None = None
    hang: bool = False
    legacy_errors: bool = False
    block_height: int = 140_000_000
    _never: trio.Event = field(default_factory=trio.Event, repr=False)

    def add_account(self, account_id: str, balance: int = 10 * ONE_NEAR) -> FakeNearAccount:
        account = self.accounts.setdefault(account_id, FakeNearAccount())
        account.balance = balance
        return account

    def add_key(self, account_id: str, public_key: str, permission: Any = FULL_ACCESS) -> None:
        account = self.accounts.setdefault(account_id, FakeNearAccount())
        account.keys[public_key] = permission

    def queries(self, request_type: str) -> list[dict[str, Any]]:
        return [
            r["params"]
            for r in self.requests
            if isinstance(r, dict)
            and isinstance(r.get("params"), dict)
            and r["params"].get("request_type") == request_type
        ]

    async def handle(self, request: FakeRequest) -> Reply:
        try:
            body = request.json()
        except ValueError:
            body = None
        self.requests.append(body)
        if self.hang:
            await self._never.wait()
        if self.fail_status is not None:
            return Reply(self.fail_status, b"upstream node unavailable")
        if not isinstance(body, dict):
            return self._error(None, "REQUEST_VALIDATION_ERROR", "PARSE_ERROR", -32700, {})
        rpc_id = body.get("id")
        if self.rpc_error is not None:
            return Reply.json({"jsonrpc": "2.0", "id": rpc_id, "error": self.rpc_error})
        if request.method != "POST" or body.get("method") != "query":
            return self._error(rpc_id, "REQUEST_VALIDATION_ERROR", "METHOD_NOT_FOUND", -32601, {})
        params = body.get("params")
        if not isinstance(params, dict) or not (
            params.get("finality") in ("optimistic", "final") or "block_id" in params
        ):
            return self._error(rpc_id, "REQUEST_VALIDATION_ERROR", "PARSE_ERROR", -32700, {})
        kind = params.get("request_type")
        if kind == "view_access_key":
            return self._view_access_key(rpc_id, params)
        if kind == "view_account":
            return self._view_account(rpc_id, params)
        return self._error(rpc_id, "REQUEST_VALIDATION_ERROR", "PARSE_ERROR", -32700, {})

    def _block(self) -> dict[str, Any]:
        return {"block_height": self.block_height, "block_hash": _BLOCK_HASH}

    def _error(
        self, rpc_id: Any, name: str, cause: str, code: int, info: dict[str, Any], data: str = ""
    ) -> Reply:
        error = {
            "name": name,
            "cause": {"name": cause, "info": info},
            "code": code,
            "message": "Server error",
            "data": data or cause,
        }
        return Reply.json({"jsonrpc": "2.0", "id": rpc_id, "error": error})

    def _view_access_key(self, rpc_id: Any, params: dict[str, Any]) -> Reply:
        account = self.accounts.get(str(params.get("account_id")))
        public_key = str(params.get("public_key"))
        permission = None if account is None else account.keys.get(public_key)
        if permission is None:
            if self.legacy_errors:
                result = {
                    "error": f"access key {public_key} does not exist while viewing",
                    "logs": [],
                    **self._block(),
                }
                return Reply.json({"jsonrpc": "2.0", "id": rpc_id, "result": result})
            return self._error(
                rpc_id,
                "HANDLER_ERROR",
                "UNKNOWN_ACCESS_KEY",
                -32000,
                {"public_key": public_key, **self._block()},
                f"Access key for public key {public_key} has never been observed on the node",
            )
        result = {"nonce": 85, "permission": permission, **self._block()}
        return Reply.json({"jsonrpc": "2.0", "id": rpc_id, "result": result})

    def _view_account(self, rpc_id: Any, params: dict[str, Any]) -> Reply:
        account_id = str(params.get("account_id"))
        account = self.accounts.get(account_id)
        if account is None:
            if self.legacy_errors:
                result = {"error": f"account {account_id} does not exist while viewing", "logs": []}
                return Reply.json({"jsonrpc": "2.0", "id": rpc_id, "result": result})
            return self._error(
                rpc_id,
                "HANDLER_ERROR",
                "UNKNOWN_ACCOUNT",
                -32000,
                {"requested_account_id": account_id, **self._block()},
                f"account {account_id} does not exist while viewing",
            )
        result = {
            "amount": str(account.balance),
            "locked": "0",
            "code_hash": "11111111111111111111111111111111",
            "storage_usage": 182,
            "storage_paid_at": 0,
            **self._block(),
        }
        return Reply.json({"jsonrpc": "2.0", "id": rpc_id, "result": result})


async def serve_fake_near_rpc(
    fake: FakeNearRpc, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `fake` on 127.0.0.1 at a free port; `nursery.start` returns its base URL (RPC URL)."""
    await serve_handler(fake.handle, task_status=task_status)


# --- the wallet side ---------------------------------------------------------------------------


def nonce_with_timestamp(timestamp_ms: int) -> bytes:
    """What wallets send: 8 bytes big-endian milliseconds, then 24 random bytes."""
    return struct.pack(">Q", timestamp_ms) + secrets.token_bytes(24)


def nep413_signed_bytes(
    message: str, nonce: bytes, recipient: str, callback_url: str | None = None
) -> bytes:
    """Tag 2^31+413 (u32 LE), then Borsh: string, [u8; 32], string, Option<string>."""

    def string(value: str) -> bytes:
        raw = value.encode("utf-8")
        return struct.pack("<I", len(raw)) + raw

    option = b"\x00" if callback_url is None else b"\x01" + string(callback_url)
    return struct.pack("<I", 2147484061) + string(message) + nonce + string(recipient) + option


@dataclass
class FakeNearWallet:
    account_id: str
    signing_key: nacl.signing.SigningKey = field(default_factory=nacl.signing.SigningKey.generate)

    @property
    def public_key(self) -> str:
        raw = bytes(self.signing_key.verify_key)
        return "ed25519:" + base58.b58encode(raw).decode("ascii")

    def sign(
        self, message: str, nonce: bytes, recipient: str, callback_url: str | None = None
    ) -> str:
        digest = hashlib.sha256(nep413_signed_bytes(message, nonce, recipient, callback_url))
        signature = self.signing_key.sign(digest.digest()).signature
        return base64.b64encode(signature).decode("ascii")

    def login_body(
        self,
        *,
        recipient: str = "private.near.ai",
        message: str = SIGN_IN_MESSAGE,
        timestamp_ms: int | None = None,
        nonce: bytes | None = None,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        """A `POST /v1/auth/near` body signed by this wallet (nonce timestamped now by default)."""
        if nonce is None:
            now = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
            nonce = nonce_with_timestamp(now)
        payload: dict[str, Any] = {"message": message, "nonce": list(nonce), "recipient": recipient}
        if callback_url is not None:
            payload["callbackUrl"] = callback_url
        return {
            "signed_message": {
                "accountId": self.account_id,
                "publicKey": self.public_key,
                "signature": self.sign(message, nonce, recipient, callback_url),
            },
            "payload": payload,
        }
