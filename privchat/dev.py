"""`privchat dev`: run on embedded defaults, for a newcomer with nothing but Python.

- no database configured: a private PostgreSQL from the `pgserver` wheel, data under `./.privchat/`;
- `DEV=true` (mock attestation, `/v1/auth/mock-login`);
- no `OPENAI_BASE_URL`: the fake NEAR AI Cloud in the same process, with its echo model.
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path
from typing import Any

import trio
from dotenv import load_dotenv

from .config import load_config
from .observability import setup_logging

DEV_API_KEY = "sk-privchat-dev"


def _embedded_postgres(data_dir: Path) -> str:
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir.resolve() / "pgdata", cleanup_mode="stop")
    return str(server.get_uri())


def run_dev(args: argparse.Namespace) -> int:
    load_dotenv(".env", override=False)
    overrides: dict[str, Any] = {"dev": True, "server_host": "127.0.0.1", "server_port": args.port}
    lines = []
    if not (os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_HOST")):
        overrides["database_url"] = _embedded_postgres(Path(args.data_dir))
        lines.append(f"PostgreSQL   embedded (pgserver), data in {Path(args.data_dir) / 'pgdata'}")
    else:
        lines.append("PostgreSQL   as configured by DATABASE_*")
    fake_upstream = "OPENAI_BASE_URL" not in os.environ
    if fake_upstream:
        overrides["openai_api_key"] = DEV_API_KEY
    config = load_config(**overrides)
    setup_logging(config)
    trio.run(partial(_run, config, fake_upstream, lines))
    return 0


async def _run(config: Any, fake_upstream: bool, lines: list[str]) -> None:
    from dataclasses import replace

    from .runtime import serve

    async with trio.open_nursery() as nursery:
        if fake_upstream:
            from .devtools.fake_cloud import FakeCloud, serve_fake_cloud

            base_url = await nursery.start(serve_fake_cloud, FakeCloud(api_key=DEV_API_KEY))
            config = replace(config, openai_base_url=base_url)
            lines.append(f"upstream     fake NEAR AI Cloud at {base_url} (model privchat-dev/echo)")
        else:
            lines.append(f"upstream     {config.openai_base_url}")

        async def serve_then_stop(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            await serve(config, task_status=task_status)
            nursery.cancel_scope.cancel()  # serve() returned on SIGINT/SIGTERM: stop the fake too

        await nursery.start(serve_then_stop)
        url = f"http://{config.server_host}:{config.server_port}"
        print("privchat dev is running (DEV=true: mock attestation, mock login)", flush=True)
        for line in lines:
            print("  " + line, flush=True)
        print(f"  serving      {url}  (health: {url}/health, docs: {url}/docs)", flush=True)
        print(
            "  log in       curl -s -X POST "
            f"{url}/v1/auth/mock-login -H 'content-type: application/json' "
            '-d \'{"email": "dev@example.com", "name": "Dev"}\'',
            flush=True,
        )
        print("  stop         Ctrl+C", flush=True)


__all__ = ["run_dev"]
