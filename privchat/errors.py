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
