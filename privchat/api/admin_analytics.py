"""Admin analytics (api.md §2.10.8, §2.10.9): activity counts over a half-open time window."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from quart import Response

from ..errors import ApiError, TextError, json_response
from ..services.registry import services
from ..store import analytics
from ..timefmt import ts_z
from .admin import bp
from .query import query_int, single

log = logging.getLogger(__name__)

# Bounds outside these are absurd for activity rows, and near year 1 or 9999 a time zone offset
# moves the instant out of Python's datetime range.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _instant(name: str) -> datetime:
    raw = single(name)
    if raw is None:
        raise TextError(400, f"Failed to deserialize query string: missing field `{name}`")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise TextError(400, f"Failed to deserialize query string: {name}: input is not RFC 3339")
    try:
        in_range = EARLIEST <= value <= LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise ApiError(400, f"{name} must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return value


def _window() -> tuple[datetime, datetime]:
    start, end = _instant("start"), _instant("end")
    if start >= end:
        raise ApiError(400, "start date must be before end date")
    return start, end


@bp.get("/analytics")
async def summary() -> Response:
    """Usage analytics for a period."""
    start, end = _window()
    try:
        totals, methods = await analytics.summary(services().db, start, end)
    except Exception as error:
        log.error("analytics summary failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to retrieve analytics") from None
    return json_response(
        {
            "period_start": ts_z(start),
            "period_end": ts_z(end),
            "user_metrics": {
                key: totals[key]
                for key in (
                    "total_users",
                    "new_users",
                    "active_users",
                    "total_logins",
                    "total_signups",
                )
            },
            "activity_metrics": {
                key: totals[key]
                for key in ("total_responses", "total_conversations", "total_file_uploads")
            },
            "by_auth_method": [dict(row) for row in methods],
        }
    )


@bp.get("/analytics/top-users")
async def top_users() -> Response:
    """The most active users in a period."""
    start, end = _window()
    limit = query_int("limit", 10)
    if not 1 <= limit <= 100:
        raise ApiError(400, "limit must be between 1 and 100")
    try:
        rows = await analytics.top_users(services().db, start, end, limit)
    except Exception as error:
        log.error("analytics top users failed", extra={"error": type(error).__name__})
        raise ApiError(500, "Failed to retrieve top users") from None
    return json_response(
        {
            "period_start": ts_z(start),
            "period_end": ts_z(end),
            "users": [
                {
                    "user_id": str(row["user_id"]),
                    "email": row["email"],
                    "activity_count": row["activity_count"],
                    "last_active": ts_z(row["last_active"]),
                }
                for row in rows
            ],
        }
    )
