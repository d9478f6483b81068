"""MOCK attestation for DEV=true only. It never contacts a dstack agent and proves nothing.

The quote is the reference's DEV placeholder `0x1234567890abcdef`; the report marks it with
`"mock": true` so that neither a person nor `privchat verify-attestation` mistakes it for
evidence (the verifier fails the quote row: it is not a TDX quote).
"""

from __future__ import annotations

from .service import OwnQuote

MOCK_QUOTE = "0x1234567890abcdef"


class MockAttestation:
    """Same interface as `AttestationService`; DEV only."""

    mock = True

    def __init__(self, binding: bytes | None) -> None:
        self.binding = binding

    async def attest(self, nonce: bytes) -> OwnQuote:
        return OwnQuote(intel_quote=MOCK_QUOTE, event_log=None, info=None, mock=True)
