"""privchat's own attestation: a TDX quote from the dstack guest agent bound to the client's
nonce and to the TLS key privchat serves (D14).

- `report_data`: the 64 bytes privchat asks the agent to quote (pure).
- `quote`: reads report_data and measurements out of a TDX quote (pure).
- `service`: the per-process attestation service around one `AsyncDstackClient`.
- `mock`: the DEV stand-in that never contacts an agent.
"""

from .report_data import NONCE_BYTES, build_report_data, parse_nonce, spki_sha256
from .service import AttestationError, AttestationUnavailable, open_attestation

__all__ = [
    "NONCE_BYTES",
    "AttestationError",
    "AttestationUnavailable",
    "build_report_data",
    "open_attestation",
    "parse_nonce",
    "spki_sha256",
]
