"""Reads what privchat needs out of an Intel TDX quote: the header, the TD report's
measurements and its 64-byte report_data. Pure; it does not check the signature
(that is `dcap-qvl`'s job, see `privchat.verify`).

Layout (Intel TDX DCAP Quote Generation Library, quote format v4 and v5, little endian):

    header (48 bytes): version u16, attestation key type u16, TEE type u32 (0x81 = TDX),
                       QE SVN u16, PCE SVN u16, QE vendor id 16, user data 20
    v4: TD report 1.0 (584 bytes) at offset 48
    v5: body type u16 (2 = TD report 1.0, 3 = TD report 1.5) and body size u32, then the body
    then: signature data length u32, signature data

    TD report: TEE_TCB_SVN 16, MRSEAM 48, MRSIGNERSEAM 48, SEAMATTRIBUTES 8, TDATTRIBUTES 8,
               XFAM 8, MRTD 48, MRCONFIGID 48, MROWNER 48, MROWNERCONFIG 48, RTMR0..3 48 each,
               REPORTDATA 64 [, TD 1.5: TEE_TCB_SVN2 16, MRSERVICETD 48]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_BYTES = 48
TDX_TEE_TYPE = 0x81
TD_REPORT10_BYTES = 584
TD_REPORT15_BYTES = 648
# Offsets inside the TD report.
_MRTD = 136
_RTMR0 = 328
_REPORT_DATA = 520


class QuoteError(ValueError):
    """The bytes are not a TDX quote this parser understands."""


@dataclass(frozen=True)
class TdxQuote:
    version: int
    attestation_key_type: int
    mrtd: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    signature_data: bytes

    @property
    def binding(self) -> bytes:
        """report_data[0:32]."""
        return self.report_data[:32]

    @property
    def nonce(self) -> bytes:
        """report_data[32:64]."""
        return self.report_data[32:]


def decode_hex(text: str) -> bytes:
    """A quote as the APIs carry it: hex, with or without `0x`. Raises `QuoteError`."""
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise QuoteError("the quote is not hex") from None


def parse_quote(raw: bytes) -> TdxQuote:
    if len(raw) < HEADER_BYTES:
        raise QuoteError(f"{len(raw)} bytes is shorter than a quote header")
    version, key_type, tee_type = struct.unpack_from("<HHI", raw, 0)
    if tee_type != TDX_TEE_TYPE:
        raise QuoteError(f"TEE type {tee_type:#x} is not TDX")
    if version == 4:
        body_at, body_len = HEADER_BYTES, TD_REPORT10_BYTES
    elif version == 5:
        if len(raw) < HEADER_BYTES + 6:
            raise QuoteError("truncated v5 body descriptor")
        body_type, body_len = struct.unpack_from("<HI", raw, HEADER_BYTES)
        expected = {2: TD_REPORT10_BYTES, 3: TD_REPORT15_BYTES}.get(body_type)
        if expected is None or body_len != expected:
            raise QuoteError(f"unsupported v5 body type {body_type} of {body_len} bytes")
        body_at = HEADER_BYTES + 6
    else:
        raise QuoteError(f"unsupported quote version {version}")
    sig_at = body_at + body_len
    if len(raw) < sig_at + 4:
        raise QuoteError(f"{len(raw)} bytes is too short for a TDX quote")
    (sig_len,) = struct.unpack_from("<I", raw, sig_at)
    if len(raw) < sig_at + 4 + sig_len:
        raise QuoteError("signature data runs past the end of the quote")
    body = raw[body_at:sig_at]
    rtmrs = tuple(body[_RTMR0 + 48 * i : _RTMR0 + 48 * (i + 1)] for i in range(4))
    return TdxQuote(
        version=version,
        attestation_key_type=key_type,
        mrtd=body[_MRTD : _MRTD + 48],
        rtmrs=rtmrs,  # type: ignore[arg-type]
        report_data=body[_REPORT_DATA : _REPORT_DATA + 64],
        signature_data=raw[sig_at + 4 : sig_at + 4 + sig_len],
    )


def parse_quote_hex(text: str) -> TdxQuote:
    return parse_quote(decode_hex(text))
