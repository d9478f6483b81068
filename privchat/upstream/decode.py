"""Decoded copies of upstream bodies, for inspection only (D4); the original bytes are relayed.

`decoded(body, content_encoding)` undoes gzip/x-gzip, deflate, br and zstd (each when its
package is installed), in the reverse order of the header's list. On any failure, or for an
unknown coding, it returns the raw bytes unchanged (the caller then inspects what it has).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

MAX_DECODED = 64 * 1024 * 1024  # inspection copies larger than this are not produced


def _gzip(data: bytes) -> bytes:
    return gzip.decompress(data)


def _deflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -zlib.MAX_WBITS)


def _decoders() -> dict[str, Callable[[bytes], bytes]]:
    table: dict[str, Callable[[bytes], bytes]] = {
        "gzip": _gzip,
        "x-gzip": _gzip,
        "deflate": _deflate,
        "identity": lambda data: data,
    }
    try:
        import brotli

        table["br"] = brotli.decompress
    except ImportError:  # pragma: no cover - brotli is a dependency
        pass
    try:
        import zstandard

        def _zstd(data: bytes) -> bytes:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_DECODED)

        table["zstd"] = _zstd
    except ImportError:  # pragma: no cover
        pass
    return table


DECODERS = _decoders()


def decoded(body: bytes, content_encoding: str | None) -> bytes:
    """A decoded copy of `body` for inspection; `body` itself when nothing (or nothing valid)
    can be undone."""
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    data = body
    try:
        for coding in reversed(codings):
            decoder = DECODERS.get(coding)
            if decoder is None:
                return body
            data = decoder(data)
            if len(data) > MAX_DECODED:
                return body
    except Exception:
        return body
    return data
