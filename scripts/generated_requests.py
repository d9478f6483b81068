"""Generated requests, the large run: schemathesis over privchat's own OpenAPI document, every
operation, valid and invalid inputs, each case as two users, an admin and nobody.

Starts a throwaway PostgreSQL database (on PRIVCHAT_BENCH_DSN, default the local server), the fake
NEAR AI Cloud and privchat (DEV=true) in this process, then sends the requests from a thread.
Reports every 5xx, every answer slower than 5 s and every request without an answer in 30 s;
exits 1 if there was any. The seed is random unless given; it is printed first, so a finding can
be replayed with `--seed`. CI runs the same engine with a fixed seed
(`tests/test_generated_requests.py`).

    python scripts/generated_requests.py [--requests 100000] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import uuid
from pathlib import Path

import httpx2
import trio
from benchkit import throwaway_database  # scripts/benchkit.py

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from privchat.config import load_config  # noqa: E402
from privchat.devtools import generated_requests  # noqa: E402
from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud  # noqa: E402
from privchat.runtime import serve  # noqa: E402

API_KEY = "sk-generated"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_DOMAIN = "admin.example"


async def session(client: httpx2.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/v1/auth/mock-login", json={"email": email, "name": "Generated"})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def main_async(dsn: str, total: int, seed: int) -> generated_requests.Report:
    fake = FakeCloud(api_key=API_KEY)
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(serve_fake_cloud, fake)
        config = load_config(
            {},
            database_url=dsn,
            server_host="127.0.0.1",
            server_port=0,
            dev=True,
            auth_admin_domains=(ADMIN_DOMAIN,),
            frontend_dir=Path(tempfile.gettempdir()) / "no-frontend",
            openai_base_url=base_url,
            openai_api_key=API_KEY,
        )
        running = await nursery.start(
            lambda task_status: serve(config, handle_signals=False, task_status=task_status)
        )
        async with httpx2.AsyncClient(base_url=running.url, timeout=60) as client:
            tag = uuid.uuid4().hex[:8]
            identities = {
                "user-a": await session(client, f"a-{tag}@example.com"),
                "user-b": await session(client, f"b-{tag}@example.com"),
                "admin": await session(client, f"admin-{tag}@{ADMIN_DOMAIN}"),
                "anonymous": {},
            }
        report = await trio.to_thread.run_sync(
            lambda: generated_requests.run(running.url, identities, seed_value=seed, total=total)
        )
        nursery.cancel_scope.cancel()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--dsn", default=None, help="admin DSN (default: PRIVCHAT_BENCH_DSN)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"seed {seed}", flush=True)
    admin_dsn = args.dsn or os.environ.get("PRIVCHAT_BENCH_DSN", DEFAULT_DSN)
    with throwaway_database(admin_dsn) as dsn:
        report = trio.run(main_async, dsn, args.requests, seed)
    print(report.summary())
    for finding in report.findings:
        print("  " + finding)
    sys.exit(1 if report.findings else 0)


if __name__ == "__main__":
    main()
