"""Upstream data: conversations, items, files, responses, signatures.

In memory; with `Store.open(path)` also written through to an SQLite file, so `privchat dev`
keeps its chats across restarts. Handlers that change an object call `save_*` once done.
Signatures are not kept: they are only served shortly after a response.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (core TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, doc TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""


@dataclass
class Conversation:
    core: str  # 32 hex
    created_at: int
    metadata: Any = field(default_factory=dict)
    pinned_at: int | None = None
    archived_at: int | None = None
    cloned_from_id: str | None = None
    root_response_id: str | None = None
    title: str | None = None
    deleted: bool = False
    items: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    last_response_id: str | None = None

    @property
    def id(self) -> str:
        return "conv_" + self.core

    def as_json(self) -> dict[str, Any]:
        meta: dict[str, Any] = dict(self.metadata) if isinstance(self.metadata, dict) else {}
        extras = {
            "pinned_at": self.pinned_at,
            "archived_at": self.archived_at,
            "cloned_from_id": self.cloned_from_id,
            "root_response_id": self.root_response_id,
            "title": self.title,
        }
        meta.update((k, v) for k, v in extras.items() if v is not None)
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": meta,
        }


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content_type: str
    data: bytes
    created_at: int
    expires_at: int | None = None

    def as_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
        }
        if self.expires_at is not None:
            obj["expires_at"] = self.expires_at
        obj["filename"] = self.filename
        obj["purpose"] = self.purpose
        return obj


@dataclass
class SignatureEntry:
    """What ``/v1/signature/{id}`` serves once ``available_at`` (trio time) has passed."""

    text: str | None  # None: the stream was disconnected
    available_at: float


@dataclass
class Store:
    conversations: dict[str, Conversation] = field(default_factory=dict)  # by 32-hex core
    files: dict[str, StoredFile] = field(default_factory=dict)  # by "file-<uuid>"
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)  # by resp_ id
    signatures: dict[str, SignatureEntry] = field(default_factory=dict)
    db: sqlite3.Connection | None = None  # the write-through copy, when opened from a file

    @classmethod
    def open(cls, path: Path) -> Store:
        """The store kept in the SQLite file `path` (created if missing), loaded into memory."""
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        store = cls(db=db)
        for (doc,) in db.execute("SELECT doc FROM conversations"):
            conv = Conversation(**json.loads(doc))
            store.conversations[conv.core] = conv
        for doc, data in db.execute("SELECT doc, data FROM files"):
            stored = StoredFile(**json.loads(doc), data=bytes(data))
            store.files[stored.id] = stored
        for response_id, doc in db.execute("SELECT id, doc FROM responses"):
            store.responses[response_id] = json.loads(doc)
        return store

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def save_conversation(self, conv: Conversation) -> None:
        if self.db is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO conversations (core, doc) VALUES (?, ?)",
                (conv.core, json.dumps(asdict(conv))),
            )

    def add_conversation(self, conv: Conversation) -> None:
        self.conversations[conv.core] = conv
        self.save_conversation(conv)

    def add_file(self, stored: StoredFile) -> None:
        self.files[stored.id] = stored
        if self.db is not None:
            doc = {f.name: getattr(stored, f.name) for f in fields(stored) if f.name != "data"}
            self.db.execute(
                "INSERT OR REPLACE INTO files (id, doc, data) VALUES (?, ?, ?)",
                (stored.id, json.dumps(doc), stored.data),
            )

    def delete_file(self, file_id: str) -> None:
        del self.files[file_id]
        if self.db is not None:
            self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def add_response(self, response_id: str, response: dict[str, Any]) -> None:
        self.responses[response_id] = response
        if self.db is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO responses (id, doc) VALUES (?, ?)",
                (response_id, json.dumps(response)),
            )

    def live_conversation(self, core: str) -> Conversation | None:
        conv = self.conversations.get(core)
        return None if conv is None or conv.deleted else conv
