"""Numbered SQL migrations from `db/migrations/`, applied once each under an advisory lock.

Files are named `NNNN_name.sql`. Each applies in its own transaction and is recorded in
`privchat_migrations` with the SHA-256 of its bytes. An applied file whose bytes changed, or
an applied version whose file is gone, stops startup: the database and the code disagree.
Replicas starting together serialise on a PostgreSQL advisory lock, so each file applies once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import trio

from .db import Database

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d+)_(\w+)\.sql$")
# Any fixed 64-bit key; it only has to be the same in every replica.
_LOCK_KEY = 0x70726976636861  # "privcha"

_HISTORY = """
CREATE TABLE IF NOT EXISTS privchat_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum CHAR(64) NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)
"""


class MigrationError(Exception):
    """The migrations on disk and in the database disagree, or one failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str


def default_directory() -> Path:
    """`./db/migrations` when run from a checkout, else the copy shipped in the package."""
    local = Path("db/migrations")
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / "migrations"


def load(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        match = _FILE.match(path.name)
        if not match:
            continue
        data = path.read_bytes()
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version}: {path.name}")
        found[version] = Migration(
            version, match.group(2), data.decode(), hashlib.sha256(data).hexdigest()
        )
    return [found[v] for v in sorted(found)]


async def migrate(db: Database, directory: Path | None = None) -> list[int]:
    """Apply pending migrations; return the versions applied by this call."""
    migrations = load(directory or default_directory())
    applied_now: list[int] = []
    async with db.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(_HISTORY)
            rows = await conn.fetch("SELECT version, name, checksum FROM privchat_migrations")
            applied = {r["version"]: r for r in rows}
            by_version = {m.version: m for m in migrations}
            for version, row in sorted(applied.items()):
                migration = by_version.get(version)
                if migration is None:
                    raise MigrationError(
                        f"migration {version} ({row['name']}) is applied but its file is missing"
                    )
                if migration.checksum != row["checksum"].strip():
                    raise MigrationError(
                        f"migration {version} ({migration.name}) changed after it was applied"
                    )
            for migration in migrations:
                if migration.version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO privchat_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                log.info("migration applied", extra={"version": migration.version})
                applied_now.append(migration.version)
        finally:
            with trio.CancelScope(shield=True):
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
