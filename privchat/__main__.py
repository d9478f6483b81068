"""The `privchat` command: serve, migrate, dev, fake-cloud, verify-attestation."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import trio
import trio_asyncio

from . import __version__
from .config import Config, ConfigError, load_config, require_upstream_key
from .dev import default_data_dir
from .observability import setup_logging
from .startup import StartupError, explained_database_errors, first_error
from .store.patroni import PatroniError

log = logging.getLogger("privchat")


def _load(**overrides: object) -> Config:
    from dotenv import load_dotenv

    load_dotenv(".env", override=False)
    return load_config(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from .runtime import serve

    config = _load()
    require_upstream_key(config)
    setup_logging(config)
    log.info(
        "starting privchat",
        extra={
            "database": config.database_target(),
            "bind": f"{config.server_host}:{config.server_port}",
        },
    )
    trio.run(serve, config)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from .store import Database
    from .store.migrate import migrate

    config = _load()
    setup_logging(config)

    async def run() -> list[int]:
        dsn = config.database_dsn()
        async with trio_asyncio.open_loop():
            async with explained_database_errors(config, dsn):
                db = await Database.connect(dsn, max_size=2, tls=config.database_tls_enabled)
            try:
                return await migrate(db, config.database_migrations_path)
            finally:
                await db.close()

    applied = trio.run(run)
    print(f"migrations applied: {applied or 'none pending'}")
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from .dev import run_dev

    return run_dev(args)


def cmd_fake_cloud(argv: list[str]) -> int:
    from .devtools.fake_cloud.cli import main as fake_main

    return fake_main(argv)


def cmd_verify_attestation(argv: list[str]) -> int:
    from .verify import main as verify_main

    return verify_main(argv)


# Commands with their own argument parsers: everything after the name is theirs.
DELEGATED: dict[str, Callable[[list[str]], int]] = {
    "fake-cloud": cmd_fake_cloud,
    "verify-attestation": cmd_verify_attestation,
}


ENV_HELP = (
    "Configuration comes from environment variables and ./.env; every variable is explained "
    "in one line each in env.example, at the root of the privchat repository."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privchat",
        description="privchat: a private AI chat backend in front of NEAR AI Cloud. "
        "New here? Run `privchat dev`.",
        epilog=ENV_HELP,
    )
    parser.add_argument("--version", action="version", version=f"privchat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "serve",
        help="serve the API from environment variables (and ./.env)",
        description="Serve the API: apply pending migrations, then listen on SERVER_HOST:"
        "SERVER_PORT until SIGTERM/SIGINT. Needs PostgreSQL (DATABASE_*), the upstream "
        "(OPENAI_BASE_URL and OPENAI_API_KEY or VPC_*), and outside DEV=true a dstack guest "
        "agent (DSTACK_SIMULATOR_ENDPOINT) for attestation; on a laptop, use `privchat dev`.",
        epilog=ENV_HELP,
    )
    sub.add_parser(
        "migrate",
        help="apply pending database migrations and exit",
        description="Apply the pending migrations to the database of DATABASE_* and exit. "
        "Replicas may run it concurrently (an advisory lock orders them); `serve` runs it too.",
        epilog=ENV_HELP,
    )
    dev = sub.add_parser(
        "dev",
        help="run locally on embedded defaults (PostgreSQL, fake upstream)",
        description="Run privchat for local work with nothing else installed: an embedded "
        "PostgreSQL (unless DATABASE_URL/DATABASE_HOST is set), a fake NEAR AI Cloud with an "
        "echo model (unless OPENAI_BASE_URL is set), DEV=true (mock attestation, "
        "POST /v1/auth/mock-login). Data survives restarts in the data directory.",
        epilog=ENV_HELP,
    )
    dev.add_argument(
        "--port", type=int, default=8081, help="port to listen on, on 127.0.0.1 (default 8081)"
    )
    dev.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="where the embedded database and the fake cloud's chats and files live "
        f"(default {default_data_dir()})",
    )
    sub.add_parser("fake-cloud", help="run the fake NEAR AI Cloud upstream (--help for options)")
    sub.add_parser("verify-attestation", help="verify a privchat attestation report (--help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    argv = sys.argv[1:] if argv is None else argv
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": cmd_serve,
        "migrate": cmd_migrate,
        "dev": cmd_dev,
    }
    try:
        if argv and argv[0] in DELEGATED:
            return DELEGATED[argv[0]](argv[1:])
        args = parser.parse_args(argv)
        return handlers[args.command](args)
    except BaseException as exc:  # noqa: BLE001 - startup failures become one line, not a traceback
        leaf = first_error(exc)
        if isinstance(leaf, KeyboardInterrupt):
            return 0
        if isinstance(leaf, ConfigError):
            print(f"privchat: configuration error: {leaf}", file=sys.stderr)
            return 2
        if isinstance(leaf, SystemExit):
            raise
        if isinstance(leaf, StartupError):
            print(f"privchat: {leaf}", file=sys.stderr)
            return 1
        if isinstance(leaf, PatroniError):  # no endpoint answered, or no leader in time
            print(f"privchat: PATRONI_CLUSTER_URL: {_one_line(leaf)}", file=sys.stderr)
            return 2
        print(f"privchat: {type(leaf).__name__}: {_one_line(leaf)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
