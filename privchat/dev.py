"""`privchat dev`: run on embedded defaults, for a newcomer with nothing but Python.

- no database configured: a private PostgreSQL from the `pgserver` wheel, in the data directory;
- `DEV=true` (mock attestation, `/v1/auth/mock-login`);
- no `OPENAI_BASE_URL`: the fake NEAR AI Cloud in the same process, with its echo model, its
  conversations and files kept in an SQLite file in the data directory.

The data directory defaults to a per-user location (`default_data_dir()`), not the current
directory, so starting from elsewhere finds the same data.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from dotenv import load_dotenv

from .config import ConfigError, load_config, require_upstream_key
from .observability import setup_logging

if TYPE_CHECKING:
    from .devtools.fake_cloud.store import Store

DEV_API_KEY = "sk-privchat-dev"
FAKE_CLOUD_FILE = "fake-cloud.sqlite3"


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/privchat`, else `~/.local/share/privchat`: the same wherever you start."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "privchat"


def _prepare_data_dir(data_dir: Path) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"--data-dir {data_dir}: cannot use it as the data directory ({exc.strerror}); "
            "pass a writable directory"
        ) from None
    return data_dir.resolve()


def _embedded_postgres(data_dir: Path) -> str:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, ssh): pgserver then
        # keeps its socket next to the data, which is what we want anyway.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pgserver

        server = pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
    return str(server.get_uri())


def run_dev(args: argparse.Namespace) -> int:
    load_dotenv(".env", override=False)
    overrides: dict[str, Any] = {"dev": True, "server_host": "127.0.0.1", "server_port": args.port}
    fake_upstream = "OPENAI_BASE_URL" not in os.environ
    if fake_upstream:
        overrides["openai_api_key"] = DEV_API_KEY
    else:
        require_upstream_key(load_config(**overrides))  # before anything is started or written
    data_dir = _prepare_data_dir(Path(args.data_dir) if args.data_dir else default_data_dir())
    lines = [f"data         {data_dir}"]
    if not (os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_HOST")):
        overrides["database_url"] = _embedded_postgres(data_dir)
        lines.append(f"PostgreSQL   embedded (pgserver), data in {data_dir / 'pgdata'}")
    else:
        lines.append("PostgreSQL   as configured by DATABASE_*")
    config = load_config(**overrides)
    setup_logging(config)
    store = None
    if fake_upstream:
        from .devtools.fake_cloud.store import Store

        store = Store.open(data_dir / FAKE_CLOUD_FILE)
        lines.append(f"fake cloud   conversations and files in {data_dir / FAKE_CLOUD_FILE}")
    try:
        trio.run(partial(_run, config, store, lines))
    finally:
        if store is not None:
            store.close()
    return 0


async def _run(config: Any, store: Store | None, lines: list[str]) -> None:
    from dataclasses import replace

    from .runtime import serve

    async with trio.open_nursery() as nursery:
        if store is not None:
            from .devtools.fake_cloud import FakeCloud, serve_fake_cloud

            fake = FakeCloud(api_key=DEV_API_KEY, store=store)
            base_url = await nursery.start(serve_fake_cloud, fake)
            config = replace(config, openai_base_url=base_url)
            lines.append(f"upstream     fake NEAR AI Cloud at {base_url} (model privchat-dev/echo)")
        else:
            lines.append(f"upstream     {config.openai_base_url}")

        async def serve_then_stop(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            await serve(config, task_status=task_status)
            nursery.cancel_scope.cancel()  # serve() returned on SIGINT/SIGTERM: stop the fake too

        await nursery.start(serve_then_stop)
        url = f"http://{config.server_host}:{config.server_port}"
        _print_banner(
            [
                "privchat dev is running (DEV=true: mock attestation, mock login)",
                *("  " + line for line in lines),
                f"  serving      {url}  (health: {url}/health, docs: {url}/docs)",
                "  log in       curl -s -X POST "
                f"{url}/v1/auth/mock-login -H 'content-type: application/json' "
                '-d \'{"email": "dev@example.com", "name": "Dev"}\'',
                "  stop         Ctrl+C",
            ]
        )


def _print_banner(lines: list[str]) -> None:
    """One write, set apart by blank lines: on a terminal on stderr (where the JSON log lines go,
    so the two never share a line), else on stdout (the logs stay one JSON object per line)."""
    stream = sys.stderr if sys.stderr.isatty() else sys.stdout
    stream.write("\n" + "\n".join(lines) + "\n\n")
    stream.flush()


__all__ = ["run_dev"]
