"""Query-string parameters, with the framework rejections of api.md §1.5 (E-TEXT 400)."""

from __future__ import annotations

from quart import request

from ..errors import ApiError, TextError

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
_BAD_INT = "Failed to deserialize query string: invalid digit found in string"


def single(name: str) -> str | None:
    """The one value of a query parameter, None when absent; a repeated parameter is 400 E-TEXT
    naming it (as the reference's extractor: serde's `duplicate field`), never last-wins."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise TextError(400, f"Failed to deserialize query string: duplicate field `{name}`")
    return values[0] if values else None


def query_int(name: str, default: int) -> int:
    """A signed 64-bit integer parameter, parsed as strictly as the reference's extractor."""
    raw = single(name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise TextError(400, _BAD_INT) from None
    if not I64_MIN <= value <= I64_MAX or raw.strip() != raw or "_" in raw:
        raise TextError(400, _BAD_INT)
    return value


def page(*, validate_limit: bool = True) -> tuple[int, int]:
    """`limit` (default 20, 1..100 when validated) and `offset` (default 0, never negative)."""
    limit, offset = query_int("limit", 20), query_int("offset", 0)
    if validate_limit and limit < 1:
        raise ApiError(400, "limit is less than minimum value of 1")
    if validate_limit and limit > 100:
        raise ApiError(400, "limit exceeds maximum value of 100")
    if limit < 0:
        raise ApiError(400, "limit cannot be negative")
    if offset < 0:
        raise ApiError(400, "offset cannot be negative")
    return limit, offset
