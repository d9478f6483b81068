"""Migrations: the 14 tables (and privchat's own), exactly-once application by concurrent replicas, drift detection."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio_asyncio

from privchat.store import Database
from privchat.store.migrate import MigrationError, load, migrate

from .dbtools import empty_database, query

MIGRATIONS = Path(__file__).parent.parent / "db" / "migrations"

TABLES = {
    "users", "oauth_accounts", "oauth_tokens", "oauth_states", "sessions", "conversations",
    "user_settings", "files", "app_config", "near_used_nonces", "user_activity_log", "user_bans",
    "models", "system_configs",
}  # fmt: skip
PRIVCHAT_TABLES = {"response_owners"}  # privchat's own (docs/ownership.md)


def test_schema_has_the_fourteen_tables(database_url: str) -> None:
    rows = query(
        database_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    assert {r["table_name"] for r in rows} == TABLES | PRIVCHAT_TABLES | {"privchat_migrations"}


def test_schema_constraints_and_indexes(database_url: str) -> None:
    constraints = {
        r["conname"]
        for r in query(
            database_url,
            "SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        )
    }
    for name in (
        "users_email_key", "oauth_accounts_provider_provider_user_id_key",
        "oauth_tokens_user_id_provider_key", "user_settings_user_id_key",
        "near_used_nonces_nonce_hex_check", "models_model_id_key", "system_configs_key_key",
    ):  # fmt: skip
        assert name in constraints, name
    indexes = {
        r["indexname"]
        for r in query(database_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    }
    for name in (
        "idx_users_email", "idx_sessions_token_hash", "idx_sessions_expires_at",
        "idx_conversations_updated_at", "idx_files_file_created_at", "idx_user_activity_type_created",
        "idx_user_activity_auth_method", "uniq_user_bans_user_type_active", "idx_near_used_nonces_used_at",
    ):  # fmt: skip
        assert name in indexes, name
    cascades = query(
        database_url,
        "SELECT conrelid::regclass::text AS t FROM pg_constraint WHERE contype = 'f' AND confdeltype = 'c'",
    )
    assert {r["t"] for r in cascades} == (TABLES | PRIVCHAT_TABLES) - {
        "users",
        "oauth_states",
        "app_config",
        "near_used_nonces",
        "models",
        "system_configs",
    }


def test_two_replicas_migrate_at_once(database_url: str) -> None:
    """Two `privchat migrate` started together on an empty database: both exit 0, each file once."""
    exe = shutil.which("privchat") or sys.executable
    args = [exe, "migrate"] if exe.endswith("privchat") else [exe, "-m", "privchat", "migrate"]
    with empty_database(database_url) as url:
        env = {**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "json"}
        procs = [
            subprocess.Popen(
                args,
                env=env,
                cwd=Path(__file__).parent.parent,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], results
        rows = query(url, "SELECT version, count(*) AS n FROM privchat_migrations GROUP BY version")
        assert {r["version"]: r["n"] for r in rows} == {m.version: 1 for m in load(MIGRATIONS)}
        assert (
            len(
                query(
                    url,
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
                )
            )
            == len(TABLES | PRIVCHAT_TABLES) + 1
        )


def test_changed_migration_stops_startup(database_url: str, tmp_path: Path) -> None:
    for path in MIGRATIONS.iterdir():
        shutil.copy(path, tmp_path / path.name)

    async def run(url: str) -> None:
        async with trio_asyncio.open_loop():
            db = await Database.connect(url, max_size=2)
            try:
                assert await migrate(db, tmp_path)
                assert await migrate(db, tmp_path) == []  # nothing pending the second time
                first = sorted(tmp_path.iterdir())[0]
                first.write_text(first.read_text() + "\n-- edited\n")
                with pytest.raises(MigrationError, match="changed after it was applied"):
                    await migrate(db, tmp_path)
                first.unlink()
                with pytest.raises(MigrationError, match="file is missing"):
                    await migrate(db, tmp_path)
            finally:
                await db.close()

    with empty_database(database_url) as url:
        trio.run(run, url)
