"""`/v1/files*` (api.md §2.6): upload and content go upstream; list and get come from PostgreSQL.

An unknown, foreign or malformed file id is 404 `{"error": "File not found"}` and nothing is
sent upstream. The upload body is streamed upstream byte for byte (the multipart boundary in
the client's `content-type` is kept); the upstream's answer is relayed as received, after the
new file's row is committed.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

from quart import Blueprint, Response, g
from quart_schema import DataSource, document_request, document_response

from ..auth.guards import require_session
from ..errors import ProxyError, TextError, json_response, not_found
from ..services.registry import services
from ..store import files
from ..tracking import answer_tracked, check_owned, delete_tracked, file_uploaded
from ..upstream import UpstreamError, forward, relay
from . import schemas
from .body import body_chunks
from .query import single

log = logging.getLogger(__name__)

bp = Blueprint("files", __name__)

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 10_000
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


@bp.errorhandler(UpstreamError)
async def _upstream_error(error: UpstreamError) -> Response:
    return error.response()  # type: ignore[no-any-return]


def _path(file_id: str, suffix: str = "") -> str:
    return f"files/{quote(file_id, safe='')}{suffix}"


def _file_not_found() -> ProxyError:
    return not_found("File not found")


async def _check_access(file_id: str) -> None:
    await check_owned(files.owns, file_id, kind="file", missing=_file_not_found())


@bp.post("/v1/files")
@document_request(schemas.FileUpload, source=DataSource.FORM_MULTIPART)
@document_response(schemas.FileObject)
@require_session
async def upload() -> Response:
    """Upload a file (multipart form: `file`, `purpose`)."""
    upstream = await forward("POST", "files", body_chunks(services().config.max_upload_bytes))
    return await answer_tracked(upstream, file_uploaded, kind="file", path_of=_path)


@bp.get("/v1/files")
@document_response(schemas.FileList)
@require_session
async def list_files() -> Response:
    """Your files, paged."""
    raw_limit, order = single("limit"), single("order")
    after, purpose = single("after"), single("purpose")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not _INTEGER.fullmatch(raw_limit):
            raise TextError(
                400, "Failed to deserialize query string: limit: invalid digit found in string"
            )
        limit = int(raw_limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise ProxyError(400, "Invalid limit parameter. Must be between 1 and 10000")
    order = "desc" if order is None else order
    if order not in ("asc", "desc"):
        raise ProxyError(400, "Invalid order parameter. Must be 'asc' or 'desc'")
    try:
        page = await files.list_page(
            services().db,
            g.user_id,
            limit=limit,
            ascending=order == "asc",
            after=after,
            purpose=purpose,
        )
    except Exception as exc:
        log.error("file list query failed", extra={"error": type(exc).__name__})
        raise ProxyError(500, "Failed to list files: Database error") from None
    body: dict[str, object] = {"object": "list", "data": [f.as_json() for f in page.data]}
    if page.data:
        body["first_id"] = page.data[0].id
        body["last_id"] = page.data[-1].id
    body["has_more"] = page.has_more
    return json_response(body)


@bp.get("/v1/files/<file_id>")
@document_response(schemas.FileObject)
@require_session
async def get_file(file_id: str) -> Response:
    """One of your files' metadata."""
    try:
        record = await files.get(services().db, file_id, g.user_id)
    except Exception as exc:
        log.error("file get failed", extra={"error": type(exc).__name__})
        raise ProxyError(500, "Failed to get file: Database error") from None
    if record is None:
        raise _file_not_found()
    return json_response(record.as_json())


@bp.delete("/v1/files/<file_id>")
@document_response(schemas.Deleted)
@require_session
async def delete_file(file_id: str) -> Response:
    """Delete a file."""
    await _check_access(file_id)
    return await delete_tracked(
        _path(file_id),
        lambda: files.delete(services().db, file_id, g.user_id),
        kind="file",
        missing=_file_not_found(),
    )


@bp.get("/v1/files/<file_id>/content")
@require_session
async def content(file_id: str) -> Response:
    """Download a file's content."""
    await _check_access(file_id)
    upstream = await forward("GET", _path(file_id, "/content"))
    return await relay(upstream)
