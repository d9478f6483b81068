"""The two RFC 3339 renderings of the API (api.md §0): TS-OFFSET (`+00:00`) and TS-Z (`Z`)."""

from __future__ import annotations

from datetime import UTC, datetime


def _fraction(dt: datetime) -> str:
    micro = dt.microsecond
    if micro == 0:
        return ""
    if micro % 1000 == 0:
        return f".{micro // 1000:03d}"
    return f".{micro:06d}"


def ts_offset(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(dt) + "+00:00"


def ts_z(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(dt) + "Z"
