"""The NEAR AI Cloud client (`client`), the byte-exact relay (`relay`) and decoded copies for
inspection (`decode`)."""

from .client import KeySource, StaticKey, Upstream, UpstreamError, client_headers, get_upstream
from .relay import buffered, forward, relay, response_headers, send_bytes

__all__ = [
    "KeySource",
    "StaticKey",
    "Upstream",
    "UpstreamError",
    "buffered",
    "client_headers",
    "forward",
    "get_upstream",
    "relay",
    "response_headers",
    "send_bytes",
]
