"""NEAR JSON-RPC client (access keys, balances) against the local fake node."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx2
import pytest
import trio

from privchat.auth import near_rpc
from privchat.auth.near_rpc import (
    FunctionCallPermission,
    NearRpcUnavailable,
    UnknownAccessKey,
    UnknownAccount,
)
from tests.fakes.near_rpc import (
    ONE_NEAR,
    FakeNearRpc,
    FakeNearWallet,
    function_call_permission,
    serve_fake_near_rpc,
)


@pytest.fixture
async def node(nursery: trio.Nursery) -> tuple[FakeNearRpc, str]:
    fake = FakeNearRpc()
    url = await nursery.start(serve_fake_near_rpc, fake)
    return fake, url


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as http:
        yield http


async def test_full_access_key(node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient) -> None:
    fake, url = node
    key = FakeNearWallet("alice.near").public_key
    fake.add_key("alice.near", key)
    assert await near_rpc.view_access_key(client, url, "alice.near", key) == "FullAccess"
    assert await near_rpc.is_full_access_key(client, url, "alice.near", key)
    [params] = fake.queries("view_access_key")[:1]
    assert params == {
        "request_type": "view_access_key",
        "finality": "optimistic",
        "account_id": "alice.near",
        "public_key": key,
    }
    request = fake.requests[0]
    assert request["jsonrpc"] == "2.0" and request["method"] == "query" and "id" in request


async def test_function_call_key(node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient) -> None:
    fake, url = node
    key = FakeNearWallet("alice.near").public_key
    fake.add_key("alice.near", key, function_call_permission("app.near", ("a", "b"), 10))
    permission = await near_rpc.view_access_key(client, url, "alice.near", key)
    assert permission == FunctionCallPermission("app.near", ("a", "b"), 10)
    fake.add_key("alice.near", key, function_call_permission(allowance=None))
    permission = await near_rpc.view_access_key(client, url, "alice.near", key)
    assert isinstance(permission, FunctionCallPermission) and permission.allowance is None
    assert not await near_rpc.is_full_access_key(client, url, "alice.near", key)


@pytest.mark.parametrize("legacy", [False, True])
async def test_unknown_key(
    node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient, legacy: bool
) -> None:
    fake, url = node
    fake.legacy_errors = legacy
    fake.add_key("alice.near", FakeNearWallet("alice.near").public_key)
    other = FakeNearWallet("alice.near").public_key
    with pytest.raises(UnknownAccessKey):
        await near_rpc.view_access_key(client, url, "alice.near", other)
    with pytest.raises(UnknownAccessKey):
        await near_rpc.view_access_key(client, url, "nobody.near", other)
    assert not await near_rpc.is_full_access_key(client, url, "alice.near", other)


async def test_finality_can_be_final(
    node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient
) -> None:
    fake, url = node
    fake.add_account("alice.near", balance=3)
    assert await near_rpc.view_account_balance(client, url, "alice.near", finality="final") == 3
    assert fake.queries("view_account")[0]["finality"] == "final"


async def test_balance(node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient) -> None:
    fake, url = node
    fake.add_account("rich.near", balance=123 * ONE_NEAR + 7)
    assert await near_rpc.view_account_balance(client, url, "rich.near") == 123 * ONE_NEAR + 7
    fake.accounts["rich.near"].balance = 0
    assert await near_rpc.view_account_balance(client, url, "rich.near") == 0
    assert fake.queries("view_account")[-1] == {
        "request_type": "view_account",
        "finality": "optimistic",
        "account_id": "rich.near",
    }


@pytest.mark.parametrize("legacy", [False, True])
async def test_unknown_account(
    node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient, legacy: bool
) -> None:
    fake, url = node
    fake.legacy_errors = legacy
    with pytest.raises(UnknownAccount):
        await near_rpc.view_account_balance(client, url, "ghost.near")


async def test_http_error_is_unavailable(
    node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient
) -> None:
    fake, url = node
    fake.fail_status = 503
    with pytest.raises(NearRpcUnavailable, match="HTTP 503"):
        await near_rpc.view_account_balance(client, url, "alice.near")
    assert not await near_rpc.is_full_access_key(client, url, "alice.near", "ed25519:x")


async def test_internal_rpc_error_is_unavailable(
    node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient
) -> None:
    fake, url = node
    fake.rpc_error = {
        "name": "INTERNAL_ERROR",
        "cause": {"name": "INTERNAL_ERROR", "info": {"error_message": "boom"}},
        "code": -32000,
        "message": "Server error",
        "data": "boom",
    }
    with pytest.raises(NearRpcUnavailable, match="INTERNAL_ERROR"):
        await near_rpc.view_access_key(client, url, "alice.near", "ed25519:x")


async def test_deadline(node: tuple[FakeNearRpc, str], client: httpx2.AsyncClient) -> None:
    fake, url = node
    fake.hang = True
    with pytest.raises(NearRpcUnavailable, match="did not answer"):
        await near_rpc.view_account_balance(client, url, "alice.near", time_limit=0.2)
    assert len(fake.requests) == 1


async def test_connection_refused(client: httpx2.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NearRpcUnavailable, match="request failed"):
        await near_rpc.view_account_balance(client, f"http://127.0.0.1:{port}", "alice.near")


async def test_malformed_answers(client: httpx2.AsyncClient, nursery: trio.Nursery) -> None:
    from tests.fakes import FakeRequest, Reply, serve_handler

    replies = [
        Reply(200, b"not json"),
        Reply.json([1, 2]),
        Reply.json({"jsonrpc": "2.0", "id": "dontcare"}),
        Reply.json({"jsonrpc": "2.0", "id": "dontcare", "result": {"amount": "-5"}}),
        Reply.json({"jsonrpc": "2.0", "id": "dontcare", "result": {"amount": 5}}),
        Reply.json({"jsonrpc": "2.0", "id": "dontcare", "result": {"permission": "Weird"}}),
    ]

    async def handler(request: FakeRequest) -> Reply:
        return replies.pop(0)

    url = await nursery.start(serve_handler, handler)
    for _ in range(5):
        with pytest.raises(NearRpcUnavailable):
            await near_rpc.view_account_balance(client, url, "alice.near")
    with pytest.raises(NearRpcUnavailable):
        await near_rpc.view_access_key(client, url, "alice.near", "ed25519:x")
