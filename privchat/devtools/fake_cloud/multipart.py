"""A small, byte-exact ``multipart/form-data`` parser. Pure."""

from __future__ import annotations

from dataclasses import dataclass


class MultipartError(ValueError):
    pass


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def boundary_of(content_type: str) -> str:
    main, _, params = content_type.partition(";")
    if main.strip().lower() != "multipart/form-data":
        raise MultipartError("not multipart/form-data")
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"')
    raise MultipartError("missing boundary")


def _disposition(value: str) -> dict[str, str]:
    out = {}
    for item in value.split(";")[1:]:
        key, _, val = item.strip().partition("=")
        out[key.lower()] = val.strip().strip('"')
    return out


def parse(body: bytes, boundary: str) -> list[Part]:
    delimiter = b"--" + boundary.encode("latin-1")
    if not body.startswith(delimiter):
        raise MultipartError("body does not start with the boundary")
    parts = []
    for chunk in _sections(body, delimiter):
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("part without header terminator")
        headers = {}
        for line in head.split(b"\r\n"):
            if line:
                key, _, value = line.decode("utf-8", "replace").partition(":")
                headers[key.strip().lower()] = value.strip()
        disp = _disposition(headers.get("content-disposition", ""))
        if "name" not in disp:
            raise MultipartError("part without a name")
        parts.append(Part(disp["name"], disp.get("filename"), headers.get("content-type"), data))
    return parts


def _sections(body: bytes, delimiter: bytes) -> list[bytes]:
    sections = []
    position = len(delimiter)
    separator = b"\r\n" + delimiter
    while True:
        if body[position : position + 2] == b"--":
            return sections
        if body[position : position + 2] != b"\r\n":
            raise MultipartError("malformed boundary line")
        start = position + 2
        end = body.find(separator, start)
        if end < 0:
            raise MultipartError("unterminated part")
        sections.append(body[start:end])
        position = end + len(separator)
