"""Files routes (spec §4)."""

from __future__ import annotations

from . import ids, multipart
from .http import Reply, Request, error, json_reply
from .state import FakeCloud
from .store import StoredFile

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_FILE_BYTES = 512 * 1024 * 1024
ALLOWED_TYPES = {
    "text/plain",
    "text/markdown",
    "text/csv",
    "text/html",
    "text/css",
    "text/javascript",
    "text/xml",
    "application/json",
    "application/pdf",
    "application/xml",
    "application/x-yaml",
    "application/yaml",
    "application/sql",
    "application/x-sh",
    "application/octet-stream",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/msword",
}


def _mime_ok(mime: str) -> bool:
    return mime in ALLOWED_TYPES or mime.startswith("text/x-")


def _text_ok(data: bytes) -> bool:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _file(fake: FakeCloud, raw: str) -> StoredFile:
    core = ids.parse_prefixed(raw, "file-")
    if core is None:
        raise error(400, f"Invalid file ID: {raw}", "invalid_request_error")
    stored = fake.store.files.get(ids.file_id(core))
    if stored is None:
        raise error(404, f"File not found: {raw}", "not_found_error")
    return stored


async def upload(fake: FakeCloud, req: Request) -> Reply:
    if len(req.body) > MAX_FILE_BYTES:
        raise error(413, "File too large", "invalid_request_error")
    try:
        parts = multipart.parse(req.body, multipart.boundary_of(req.header("content-type") or ""))
    except multipart.MultipartError as exc:
        raise error(400, "Invalid multipart form data", "invalid_request_error") from exc
    fields = {p.name: p for p in parts}
    upload_part = fields.get("file")
    if upload_part is None or not upload_part.filename:
        raise error(400, "Missing file", "invalid_request_error", "file")
    purpose = fields["purpose"].data.decode("utf-8", "replace") if "purpose" in fields else None
    if purpose is None:
        raise error(400, "Missing purpose", "invalid_request_error", "purpose")
    if purpose not in PURPOSES:
        raise error(400, f"Invalid purpose: {purpose}", "invalid_request_error", "purpose")
    mime = (upload_part.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if not _mime_ok(mime):
        raise error(400, f"Unsupported file type: {mime}", "invalid_request_error", "file")
    if mime.startswith("text/") and not _text_ok(upload_part.data):
        raise error(400, "Text files must be UTF-8 encoded", "invalid_request_error", "file")
    created = ids.now()
    expires_at = _expiry(fields, created)
    stored = StoredFile(
        id=ids.new_file_id(),
        filename=upload_part.filename,
        purpose=purpose,
        content_type=mime,
        data=upload_part.data,
        created_at=created,
        expires_at=expires_at,
    )
    fake.store.add_file(stored)
    return json_reply(201, stored.as_json())


def _expiry(fields: dict[str, multipart.Part], created: int) -> int | None:
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor is None or anchor.data != b"created_at" or seconds is None:
        raise error(400, "Invalid expires_after", "invalid_request_error", "expires_after")
    try:
        value = int(seconds.data)
    except ValueError as exc:
        raise error(400, "Invalid expires_after", "invalid_request_error", "expires_after") from exc
    if not 1 <= value <= 31_536_000:
        raise error(400, "Invalid expires_after", "invalid_request_error", "expires_after")
    return created + value


async def list_files(fake: FakeCloud, req: Request) -> Reply:
    params = req.params
    try:
        limit = min(max(int(params.get("limit", "10000")), 1), 10000)
    except ValueError:
        limit = 10000
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise error(400, "Invalid order", "invalid_request_error", "order")
    purpose = params.get("purpose")
    if purpose is not None and purpose not in PURPOSES:
        raise error(400, f"Invalid purpose: {purpose}", "invalid_request_error", "purpose")
    files = [f for f in fake.store.files.values() if purpose is None or f.purpose == purpose]
    files.sort(key=lambda f: (f.created_at, f.id), reverse=order == "desc")
    after = params.get("after")
    ids_in_order = [f.id for f in files]
    if after and after in ids_in_order:
        files = files[ids_in_order.index(after) + 1 :]
    page = files[: limit + 1]
    data = [f.as_json() for f in page[:limit]]
    body: dict = {"object": "list", "data": data}
    if data:
        body["first_id"] = data[0]["id"]
        body["last_id"] = data[-1]["id"]
    body["has_more"] = len(page) > limit
    return json_reply(200, body)


async def get(fake: FakeCloud, req: Request, file_id: str) -> Reply:
    return json_reply(200, _file(fake, file_id).as_json())


async def delete(fake: FakeCloud, req: Request, file_id: str) -> Reply:
    stored = _file(fake, file_id)
    fake.store.delete_file(stored.id)
    return json_reply(200, {"id": stored.id, "object": "file", "deleted": True})


async def content(fake: FakeCloud, req: Request, file_id: str) -> Reply:
    stored = _file(fake, file_id)
    disposition = f'attachment; filename="{stored.filename}"'.encode()
    return Reply(200, stored.data, stored.content_type, [(b"content-disposition", disposition)])
