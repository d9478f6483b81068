"""The `privchat` command: serve, migrate, dev, fake-cloud, verify-attestation."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import trio
import trio_asyncio

from .config import Config, ConfigError, load_config
from .observability import setup_logging

log = logging.getLogger("privchat")


def _load(**overrides: object) -> Config:
    from dotenv import load_dotenv

    load_dotenv(".env", override=False)
    return load_config(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from .runtime import serve

    config = _load()
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
        async with trio_asyncio.open_loop():
            db = await Database.connect(
                config.database_dsn(), max_size=2, tls=config.database_tls_enabled
            )
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="privchat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve from environment variables (and .env)")
    sub.add_parser("migrate", help="apply pending database migrations and exit")
    dev = sub.add_parser("dev", help="run locally on embedded defaults (PostgreSQL, fake upstream)")
    dev.add_argument("--port", type=int, default=8081)
    dev.add_argument("--data-dir", default=".privchat")
    sub.add_parser("fake-cloud", help="run the fake NEAR AI Cloud upstream (--help for options)")
    sub.add_parser("verify-attestation", help="verify a privchat attestation report (--help)")
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
        leaf = _first_error(exc)
        if isinstance(leaf, KeyboardInterrupt):
            return 0
        if isinstance(leaf, ConfigError):
            print(f"privchat: configuration error: {leaf}", file=sys.stderr)
            return 2
        if isinstance(leaf, SystemExit):
            raise
        print(f"privchat: {type(leaf).__name__}: {_one_line(leaf)}", file=sys.stderr)
        return 1


def _first_error(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = next(
            (e for e in exc.exceptions if not isinstance(e, trio.Cancelled)), exc.exceptions[0]
        )
    return exc


def _one_line(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
