"""The error body families of the API (spec api.md §1.5), as exceptions and responses.

- `ApiError` renders E-API: `{"code": ..., "message": ..., "details"?: ...}`.
- `ProxyError` renders E-PROXY: `{"error": ...}`.
- `TextError` renders E-TEXT: a plain-text framework rejection (400/413/415/422).
Raise them anywhere in a handler; the app's error handlers turn them into responses.
"""

from __future__ import annotations

import json

from quart import Response

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "unprocessable_entity",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def response(self) -> Response:
        body: dict[str, str] = {"code": _CODES.get(self.status, "error"), "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return json_response(body, self.status)


class ProxyError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def response(self) -> Response:
        return json_response({"error": self.message}, self.status, self.headers)


class TextError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text

    def response(self) -> Response:
        return Response(self.text, status=self.status, content_type="text/plain; charset=utf-8")


def not_found(message: str = "Conversation not found") -> ProxyError:
    return ProxyError(404, message)


RETRY_AFTER = "1"  # seconds: a failover takes about that long


def outage_cause(error: BaseException) -> bool:
    """Whether `error` was raised because the database was unavailable (a failover), even when
    a handler re-raised it as a 500 `from None` (the original stays in `__context__`)."""
    from .store.db import DatabaseUnavailable

    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, DatabaseUnavailable):
            return True
        if isinstance(seen, BaseExceptionGroup):
            return any(outage_cause(inner) for inner in seen.exceptions)
        seen = seen.__cause__ or seen.__context__
    return False


def unavailable(family: str) -> Response:
    """503 with `Retry-After`, in the body family of the failed route."""
    message = "Database temporarily unavailable; retry shortly"
    body: dict[str, str] = (
        {"error": message} if family == "proxy" else {"code": _CODES[503], "message": message}
    )
    return json_response(body, 503, {"Retry-After": RETRY_AFTER})
