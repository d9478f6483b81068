"""Soak: 100,000 mixed requests against privchat as its own process, with the fake NEAR AI Cloud.

Per 10 requests: a streamed response read to the end, a streamed response cancelled mid-stream
(the client closes after the first event of a slow stream), a sign-in (a new user and session),
a settings read and a settings patch, a conversation create, a conversation read, the list of
the user's conversations and a `GET /v1/users/me`. `--concurrency` clients (default 24) share
`--users` signed-in users; a user sends at most one `/v1/responses` per 1.05 s (the rate limit).

After a warm-up of 2,000 such requests, and every 10,000 requests, it prints privchat's resident
memory and, from `/metrics`, the living Trio tasks, the database pool's open and idle connections
and the open file descriptors. At the end, with no client connected and nothing in flight, these
must be back where they were when idle after the warm-up: anything above is a leak. Acceptance (issue 14): RSS after 100,000 within 10 % of RSS after 10,000.

    python scripts/bench_soak.py [--requests 100000] [--concurrency 24] [--out bench_soak.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import trio
from benchkit import privchat_with_fake, rss_mb, throwaway_database, wait_http

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
JSON = {"content-type": "application/json"}
RATE_GAP = 1.05
KINDS = (
    "stream",
    "cancelled_stream",
    "session",
    "settings_get",
    "settings_patch",
    "conversation_create",
    "conversation_get",
    "conversation_list",
    "users_me",
    "users_me",
)


def response_body(conversation: str | None) -> bytes:
    body: dict[str, Any] = {
        "model": "privchat-dev/echo",
        "input": [{"role": "user", "content": "Say hello"}],
        "stream": True,
    }
    if conversation:
        body["conversation"] = conversation
    return json.dumps(body).encode()


class User:
    def __init__(self, token: str) -> None:
        self.token = token
        self.conversations: list[str] = []
        self.next_response = 0.0

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def sign_in(client: httpx2.AsyncClient) -> dict[str, Any]:
    r = await client.post(
        "/v1/auth/mock-login",
        json={"email": f"soak-{uuid.uuid4().hex[:10]}@example.com", "name": "Soak"},
    )
    assert r.status_code == 200, r.status_code
    return dict(r.json())


async def one(client: httpx2.AsyncClient, kind: str, user: User) -> int:
    """One request of `kind`; returns its status (0 for a stream the client cancelled)."""
    if kind in ("stream", "cancelled_stream"):
        wait = user.next_response - time.monotonic()
        if wait > 0:
            await trio.sleep(wait)
        user.next_response = time.monotonic() + RATE_GAP
        conversation = user.conversations[-1] if user.conversations else None
        headers = {**JSON, **user.auth}
        if kind == "cancelled_stream":
            headers |= {"x-fake-deltas": "200", "x-fake-delay-ms": "20"}
        try:
            async with client.stream(
                "POST", "/v1/responses", content=response_body(conversation), headers=headers
            ) as r:
                if r.status_code != 200 or kind == "stream":
                    await r.aread()
                    return r.status_code
                async for _chunk in r.aiter_raw():
                    return 0  # closes the connection mid-stream
                return r.status_code
        finally:  # the server's window starts when it accepted the request: count from the end
            user.next_response = time.monotonic() + RATE_GAP
    if kind == "session":
        r = await client.post(
            "/v1/auth/mock-login",
            json={"email": f"soak-{uuid.uuid4().hex[:10]}@example.com", "name": "Soak"},
        )
        return r.status_code
    if kind == "settings_get":
        return (await client.get("/v1/users/me/settings", headers=user.auth)).status_code
    if kind == "settings_patch":
        r = await client.patch(
            "/v1/users/me/settings",
            json={"web_search": bool(time.time_ns() % 2)},
            headers=user.auth,
        )
        return r.status_code
    if kind == "conversation_create":
        r = await client.post("/v1/conversations", json={}, headers=user.auth)
        if r.status_code == 200:
            user.conversations.append(r.json()["id"])
            del user.conversations[:-20]
        return r.status_code
    if kind == "conversation_get":
        if not user.conversations:
            return (await client.get("/v1/users/me", headers=user.auth)).status_code
        path = f"/v1/conversations/{user.conversations[-1]}"
        return (await client.get(path, headers=user.auth)).status_code
    if kind == "conversation_list":
        return (await client.get("/v1/conversations", headers=user.auth)).status_code
    return (await client.get("/v1/users/me", headers=user.auth)).status_code


async def gauges(client: httpx2.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    wanted = {
        "chat_api_trio_tasks": "tasks",
        'chat_api_db_pool_connections{state="open"}': "pool_open",
        'chat_api_db_pool_connections{state="idle"}': "pool_idle",
        "chat_api_open_fds": "fds",
    }
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


async def idle_gauges(url: str, pid: int) -> dict[str, float]:
    """The gauges with no client connected and nothing in flight."""
    await trio.sleep(3)  # closed client connections and cancelled streams finish tearing down
    async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
        out = await gauges(client)
    out["rss_mb"] = round(rss_mb(pid), 1)
    return out


async def run_mix(
    url: str,
    people: list[User],
    requests: int,
    concurrency: int,
    statuses: Counter[str],
    every: int = 0,
    on_every: Any = None,
) -> None:
    limits = httpx2.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    done = 0
    next_index = 0
    async with httpx2.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal done, next_index
            while next_index < requests:
                i = next_index
                next_index += 1
                kind = KINDS[i % len(KINDS)]
                user = random.choice(people)
                try:
                    status = await one(client, kind, user)
                except httpx2.HTTPError as error:
                    statuses[f"{kind} {type(error).__name__}"] += 1
                else:
                    statuses[f"{kind} {status}"] += 1
                done += 1
                if every and done % every == 0:
                    await on_every(client, done)

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)


async def soak(url: str, pid: int, requests: int, concurrency: int, users: int) -> dict[str, Any]:
    async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
        people = [User((await sign_in(client))["token"]) for _ in range(users)]
    # Warm-up at full concurrency: pools and caches reach their working size.
    warmup: Counter[str] = Counter()
    await run_mix(url, people, 2_000, concurrency, warmup)
    baseline = await idle_gauges(url, pid)
    print(json.dumps({"warm-up idle": baseline}), flush=True)
    statuses: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    started = time.monotonic()

    async def snapshot(client: httpx2.AsyncClient, done: int) -> None:
        row = {"requests": done, "rss_mb": round(rss_mb(pid), 1), **await gauges(client)}
        row["seconds"] = round(time.monotonic() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    await run_mix(url, people, requests, concurrency, statuses, 10_000, snapshot)
    after = await idle_gauges(url, pid)
    return {"baseline": baseline, "rows": rows, "after": after, "statuses": dict(statuses)}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| requests | RSS MB | Trio tasks | pool open / idle | fds | seconds |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    b = result["baseline"]
    lines.append(
        f"| idle after warm-up | {b['rss_mb']:.1f} | {b['tasks']:.0f} | {b['pool_open']:.0f} / "
        f"{b['pool_idle']:.0f} | {b['fds']:.0f} | |"
    )
    for r in result["rows"]:
        lines.append(
            f"| {r['requests']:,} | {r['rss_mb']:.1f} | {r['tasks']:.0f} | {r['pool_open']:.0f} / "
            f"{r['pool_idle']:.0f} | {r['fds']:.0f} | {r['seconds']} |"
        )
    a = result["after"]
    lines.append(
        f"| idle after | {a['rss_mb']:.1f} | {a['tasks']:.0f} | {a['pool_open']:.0f} / "
        f"{a['pool_idle']:.0f} | {a['fds']:.0f} | |"
    )
    rows = result["rows"]
    if len(rows) >= 2:
        ratio = rows[-1]["rss_mb"] / rows[0]["rss_mb"]
        lines.append(
            f"\nRSS at {rows[-1]['requests']:,} / RSS at {rows[0]['requests']:,}: {ratio:.3f}"
        )
    leaked = {k: a[k] - b[k] for k in ("tasks", "pool_open", "fds")}
    lines.append(f"idle after minus idle after warm-up: {leaked}")
    lines.append(f"statuses: {json.dumps(result['statuses'], sort_keys=True)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--out", default="bench_soak.json")
    args = parser.parse_args()
    with throwaway_database(ADMIN_DSN) as dsn, privchat_with_fake(dsn) as (url, _fake, proc):

        async def go() -> dict[str, Any]:
            await wait_http(f"{url}/health")
            return await soak(url, proc.pid, args.requests, args.concurrency, args.users)

        result = trio.run(go)
    print(table(result))
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
