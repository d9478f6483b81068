"""D6: where an OAuth login may send its session token back to.

A `frontend_callback` is allowed iff it is an http(s) URL without credentials, query or
fragment whose origin CORS allows (api.md §1.6), or the origin of FRONTEND_URL, or the
service's own origin (from REDIRECT_URI). Anything else would leak the token to a stranger.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import Config
from ..cors import CorsPolicy


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an absolute http(s) URL, or None when it is not one."""
    if any(c.isspace() or c == "\\" or not c.isprintable() for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + ("" if port is None else f":{port}")


def allowed(frontend_callback: str, config: Config) -> bool:
    parts = urlsplit(frontend_callback)
    if parts.query or parts.fragment or "?" in frontend_callback or "#" in frontend_callback:
        return False
    origin = origin_of(frontend_callback)
    if origin is None:
        return False
    if CorsPolicy.parse(config.cors_allowed_origins).allows(origin):
        return True
    return origin in (origin_of(config.frontend_url), origin_of(config.redirect_uri))
