"""The `files` table: the caller's uploaded files, served from PostgreSQL (api.md §2.6).

Ownership = a row (id, user_id). The list is keyset-paginated on (file_created_at, id), so files
uploaded within the same second are neither skipped nor repeated across pages (deviation C1).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .db import Connection, Database, Record

MAX_ID_LENGTH = 255  # files.id is VARCHAR(255)
MAX_FILENAME_LENGTH = 255
MAX_PURPOSE_LENGTH = 50
_COLUMNS = "id, bytes, file_created_at, file_expires_at, filename, purpose"


def well_formed(value: str, max_length: int = MAX_ID_LENGTH) -> bool:
    """Could this string be stored? (PostgreSQL rejects NUL bytes; the columns are bounded.)"""
    return 0 < len(value) <= max_length and value.isprintable()


@dataclass(frozen=True)
class FileRecord:
    id: str
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str

    @classmethod
    def from_upstream(cls, obj: Any) -> FileRecord | None:
        """The upstream file object, or None when it lacks a required field (api.md §2.6.1)."""
        if not isinstance(obj, dict):
            return None

        def integer(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        fid, size, created = obj.get("id"), obj.get("bytes"), obj.get("created_at")
        name, purpose, expires = obj.get("filename"), obj.get("purpose"), obj.get("expires_at")
        if not (isinstance(fid, str) and well_formed(fid)):
            return None
        if not (integer(size) and integer(created)):
            return None
        if not (isinstance(name, str) and isinstance(purpose, str)):
            return None
        if expires is not None and not integer(expires):
            return None
        if not well_formed(purpose, MAX_PURPOSE_LENGTH):
            return None
        # The column is bounded; an over-long or unprintable name is stored shortened/cleaned
        # rather than leaving the file untracked (and therefore unreachable).
        name = "".join(c if c.isprintable() else "\ufffd" for c in name)[:MAX_FILENAME_LENGTH]
        return cls(fid, size, created, expires, name, purpose)

    @classmethod
    def from_row(cls, row: Record) -> FileRecord:
        return cls(
            row["id"],
            row["bytes"],
            row["file_created_at"],
            row["file_expires_at"],
            row["filename"],
            row["purpose"],
        )

    def as_json(self) -> dict[str, Any]:
        """The `FileGetResponse` object; `expires_at` omitted when null."""
        obj: dict[str, Any] = {
            "object": "file",
            "id": self.id,
            "bytes": self.bytes,
            "created_at": self.created_at,
        }
        if self.expires_at is not None:
            obj["expires_at"] = self.expires_at
        obj["filename"] = self.filename
        obj["purpose"] = self.purpose
        return obj


async def track(db: Database | Connection, record: FileRecord, user_id: uuid.UUID) -> bool:
    """Insert the file for `user_id`, or refresh it if the same user already has it.

    A file id another user owns is left alone (deviation C2): ownership never moves. Returns True when
    the caller owns the file afterwards.
    """
    owner = await db.fetchval(
        "INSERT INTO files (id, user_id, bytes, file_created_at, file_expires_at, filename, purpose)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (id) DO UPDATE SET bytes = EXCLUDED.bytes,"
        " file_created_at = EXCLUDED.file_created_at, file_expires_at = EXCLUDED.file_expires_at,"
        " filename = EXCLUDED.filename, purpose = EXCLUDED.purpose"
        " WHERE files.user_id = EXCLUDED.user_id"
        " RETURNING user_id",
        record.id,
        user_id,
        record.bytes,
        record.created_at,
        record.expires_at,
        record.filename,
        record.purpose,
    )
    return owner == user_id


async def get(db: Database | Connection, file_id: str, user_id: uuid.UUID) -> FileRecord | None:
    if not well_formed(file_id):
        return None
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM files WHERE id = $1 AND user_id = $2", file_id, user_id
    )
    return None if row is None else FileRecord.from_row(row)


async def owns_all(db: Database | Connection, file_ids: set[str], user_id: uuid.UUID) -> bool:
    """Does the caller own every one of `file_ids` (one round trip)?"""
    if not all(well_formed(file_id) for file_id in file_ids):
        return False
    if not file_ids:
        return True
    owned = await db.fetchval(
        "SELECT count(*) FROM files WHERE user_id = $1 AND id = ANY($2::text[])",
        user_id,
        list(file_ids),
    )
    return bool(owned == len(file_ids))


async def owns(db: Database | Connection, file_id: str, user_id: uuid.UUID) -> bool:
    if not well_formed(file_id):
        return False
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM files WHERE id = $1 AND user_id = $2)", file_id, user_id
        )
    )


async def delete(db: Database | Connection, file_id: str, user_id: uuid.UUID) -> bool:
    if not well_formed(file_id):
        return False
    status = await db.execute("DELETE FROM files WHERE id = $1 AND user_id = $2", file_id, user_id)
    return status.split()[-1] != "0"


@dataclass(frozen=True)
class Page:
    data: list[FileRecord]
    has_more: bool


async def list_page(
    db: Database | Connection,
    user_id: uuid.UUID,
    *,
    limit: int,
    ascending: bool,
    after: str | None = None,
    purpose: str | None = None,
) -> Page:
    """One page of the caller's files (api.md §2.6.2).

    `after` must be one of the caller's files matching `purpose`, else the page is empty.
    """
    if purpose is not None and not well_formed(purpose, MAX_PURPOSE_LENGTH):
        return Page([], False)  # no stored file can have that purpose
    direction = "ASC" if ascending else "DESC"
    args: list[Any] = [user_id, purpose, limit + 1]
    cursor = ""
    if after is not None:
        if not well_formed(after):
            return Page([], False)
        args.append(after)
        # The cursor row must be the caller's and match the filter; if not, the join is empty.
        compare = ">" if ascending else "<"
        cursor = (
            " AND (f.file_created_at, f.id) "
            + compare
            + " (SELECT c.file_created_at, c.id FROM files c WHERE c.id = $4 AND c.user_id = $1"
            " AND ($2::text IS NULL OR c.purpose = $2))"
        )
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM files f WHERE f.user_id = $1"
        " AND ($2::text IS NULL OR f.purpose = $2)"
        f"{cursor}"
        f" ORDER BY f.file_created_at {direction}, f.id {direction} LIMIT $3",
        *args,
    )
    records = [FileRecord.from_row(row) for row in rows]
    return Page(records[:limit], len(records) > limit)
