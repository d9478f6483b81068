"""Decoded copies of upstream bodies, for inspection only (D4); the original bytes are relayed.

`decoded(body, content_encoding)` undoes gzip/x-gzip, deflate, br and zstd (each when its
package is installed), in the reverse order of the header's list. On any failure, or for an
unknown coding, it returns the raw bytes unchanged (the caller then inspects what it has).
`incremental(content_encoding)` decodes a body chunk by chunk (one coding at most), for
inspecting the start of a stream without holding the rest.
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


def incremental(content_encoding: str | None) -> Callable[[bytes], bytes] | None:
    """A function decoding successive chunks of a body sent with `content_encoding` (none or
    one coding); None for an unknown coding or a list of several. It raises on corrupt data."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return lambda chunk: chunk
    if len(codings) > 1:
        return None
    coding = codings[0]
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if coding == "deflate":
        return _Deflate().decompress
    if coding == "br" and "br" in DECODERS:
        import brotli

        return brotli.Decompressor().process  # type: ignore[no-any-return]
    if coding == "zstd" and "zstd" in DECODERS:
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress  # type: ignore[no-any-return]
    return None


class _Deflate:
    """`deflate` as sent in practice: zlib-wrapped, or raw when the wrapper is missing."""

    def __init__(self) -> None:
        self._inner: zlib._Decompress | None = None
        self._head = b""

    def decompress(self, chunk: bytes) -> bytes:
        if self._inner is None:
            self._head += chunk
            if len(self._head) < 2:
                return b""
            wrapped = (self._head[0] & 0x0F) == 8 and int.from_bytes(self._head[:2]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            chunk, self._head = self._head, b""
        return self._inner.decompress(chunk)
