"""The `models` table: per-model admin settings `{"public": bool, "system_prompt"?: str}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .db import Connection, Database


@dataclass(frozen=True)
class ModelSettings:
    public: bool = True
    system_prompt: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> ModelSettings:
        """Stored JSON with missing or mistyped fields defaulted (public, no prompt)."""
        raw = raw if isinstance(raw, dict) else {}
        public = raw.get("public")
        prompt = raw.get("system_prompt")
        return cls(
            public if isinstance(public, bool) else True,
            prompt if isinstance(prompt, str) else None,
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"public": self.public}
        if self.system_prompt is not None:
            out["system_prompt"] = self.system_prompt
        return out


async def get(db: Database | Connection, model_id: str) -> ModelSettings | None:
    raw = await db.fetchval("SELECT settings FROM models WHERE model_id = $1", model_id)
    return None if raw is None else ModelSettings.parse(raw)


async def public_map(db: Database | Connection, model_ids: list[str]) -> dict[str, bool]:
    rows = await db.fetch(
        "SELECT model_id, settings FROM models WHERE model_id = ANY($1::text[])", model_ids
    )
    return {row["model_id"]: ModelSettings.parse(row["settings"]).public for row in rows}


async def page(
    db: Database, limit: int, offset: int
) -> tuple[list[tuple[str, ModelSettings]], int]:
    rows = await db.fetch(
        "SELECT model_id, settings FROM models ORDER BY model_id ASC LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    total = await db.fetchval("SELECT COUNT(*) FROM models")
    return [(r["model_id"], ModelSettings.parse(r["settings"])) for r in rows], int(total)


async def create(db: Database | Connection, model_id: str, settings: ModelSettings) -> None:
    await db.execute(
        "INSERT INTO models (model_id, settings) VALUES ($1, $2)", model_id, settings.as_json()
    )


async def update(db: Database | Connection, model_id: str, settings: ModelSettings) -> None:
    await db.execute(
        "UPDATE models SET settings = $2 WHERE model_id = $1", model_id, settings.as_json()
    )


async def delete(db: Database | Connection, model_id: str) -> bool:
    status = await db.execute("DELETE FROM models WHERE model_id = $1", model_id)
    return status.split()[-1] != "0"
