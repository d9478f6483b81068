"""Benchmark: `GET /v1/conversations` for one user with 5,000 conversations, against the fake.

Starts a throw-away PostgreSQL database (on PRIVCHAT_BENCH_DSN, default the local server), the
fake NEAR AI Cloud and privchat in this process, seeds the conversations directly in both, then
times the list through privchat and, as the baseline, the same five batch calls sent straight to
the fake. Prints one JSON object (milliseconds).

    python scripts/bench_conversations.py [--conversations 5000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import trio
from benchkit import throwaway_database  # scripts/benchkit.py

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from privchat.config import load_config  # noqa: E402
from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud  # noqa: E402
from privchat.devtools.fake_cloud.store import Conversation  # noqa: E402
from privchat.runtime import serve  # noqa: E402

API_KEY = "sk-bench"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "min": round(ordered[0], 2),
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "max": round(ordered[-1], 2),
    }


async def _timed(call: Any) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def bench(dsn: str, count: int, rounds: int) -> dict[str, Any]:
    fake = FakeCloud(api_key=API_KEY)
    ids = []
    for _ in range(count):
        conv = Conversation(core=uuid.uuid4().hex, created_at=1_700_000_000, metadata={"t": "x"})
        fake.store.conversations[conv.core] = conv
        ids.append(conv.id)
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(serve_fake_cloud, fake)
        config = load_config(
            {},
            database_url=dsn,
            server_host="127.0.0.1",
            server_port=0,
            dev=True,
            frontend_dir=Path(tempfile.gettempdir()) / "no-frontend",
            openai_base_url=base_url,
            openai_api_key=API_KEY,
        )
        running = await nursery.start(
            lambda task_status: serve(config, handle_signals=False, task_status=task_status)
        )
        db = running.services.db
        async with httpx2.AsyncClient(base_url=running.url, timeout=60) as client:
            login = await client.post(
                "/v1/auth/mock-login", json={"email": "bench@example.com", "name": "Bench"}
            )
            token = login.json()["token"]
            user_id = await db.fetchval(
                "SELECT user_id FROM sessions WHERE token_hash = encode(sha256($1::bytea), 'hex')",
                token.encode(),
            )
            await db.executemany(
                "INSERT INTO conversations (id, user_id, updated_at)"
                " VALUES ($1, $2, NOW() - make_interval(secs => $3))",
                [(cid, user_id, float(n)) for n, cid in enumerate(ids)],
            )
            headers = {"authorization": f"Bearer {token}"}

            async def through_privchat() -> None:
                response = await client.get("/v1/conversations", headers=headers)
                assert response.status_code == 200 and len(response.json()) == count

            async with httpx2.AsyncClient(
                base_url=base_url,
                # As privchat's internal call: no compression asked for.
                headers={"authorization": f"Bearer {API_KEY}", "accept-encoding": "identity"},
                timeout=60,
            ) as direct:

                async def straight_to_fake() -> None:
                    async with trio.open_nursery() as inner:
                        for start in range(0, count, 1000):
                            chunk = ids[start : start + 1000]
                            inner.start_soon(
                                lambda c=chunk: direct.post("/conversations/batch", json={"ids": c})
                            )

                await through_privchat()  # warm up pools and caches
                await straight_to_fake()
                privchat_ms = [await _timed(through_privchat) for _ in range(rounds)]
                fake_ms = [await _timed(straight_to_fake) for _ in range(rounds)]
        nursery.cancel_scope.cancel()
    p50 = statistics.median(privchat_ms)
    base = statistics.median(fake_ms)
    return {
        "benchmark": "list_conversations",
        "conversations": count,
        "rounds": rounds,
        "privchat_ms": _summary(privchat_ms),
        "fake_direct_ms": _summary(fake_ms),
        "overhead_p50_ms": round(p50 - base, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--dsn", default=None, help="admin DSN (default: PRIVCHAT_BENCH_DSN)")
    args = parser.parse_args()
    import os

    admin_dsn = args.dsn or os.environ.get("PRIVCHAT_BENCH_DSN", DEFAULT_DSN)
    with throwaway_database(admin_dsn) as dsn:
        result = trio.run(bench, dsn, args.conversations, args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
