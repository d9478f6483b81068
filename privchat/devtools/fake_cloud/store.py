"""In-memory upstream data: conversations, items, files, responses, signatures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

    def live_conversation(self, core: str) -> Conversation | None:
        conv = self.conversations.get(core)
        return None if conv is None or conv.deleted else conv
