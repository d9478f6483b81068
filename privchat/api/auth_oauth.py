"""`GET /v1/auth/google|github` and `GET /v1/auth/callback` (api.md §2.2.1-2.2.2, D6).

Start: a one-time state and PKCE verifier go to `oauth_states`, the browser goes (307) to the
provider. Callback: the state is consumed (unknown, reused or older than 10 minutes fails),
the code is exchanged, the person signed in, and the browser goes (307) back to the frontend
with the session token in the query.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

from quart import Response, request

from ..auth import frontend_callback, login
from ..auth.oauth_providers import (
    OAuthFlowError,
    OAuthProviderConfig,
    build_authorization_request,
    complete_authorization,
    github_provider,
    google_provider,
)
from ..config import Config
from ..errors import ApiError, TextError
from ..services.registry import services
from ..store import oauth as oauth_store
from ..timefmt import ts_offset
from .auth import bp

log = logging.getLogger(__name__)

_DISPLAY = {"google": "Google", "github": "Github"}


def provider_config(name: str, config: Config) -> OAuthProviderConfig:
    if name == "google":
        return google_provider(
            config.google_client_id,
            config.google_client_secret,
            authorize_url=config.google_authorize_url,
            token_url=config.google_token_url,
            userinfo_url=config.google_userinfo_url,
        )
    return github_provider(
        config.github_client_id,
        config.github_client_secret,
        authorize_url=config.github_authorize_url,
        token_url=config.github_token_url,
        api_url=config.github_api_url,
    )


def _absolute_url(url: str) -> bool:
    if not url.isprintable() or any(c.isspace() for c in url):
        return False
    parts = urlsplit(url)
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


@bp.get("/google")
async def google_start() -> Response:
    """Start signing in with Google (redirects to Google)."""
    return await _start("google")


@bp.get("/github")
async def github_start() -> Response:
    """Start signing in with GitHub (redirects to GitHub)."""
    return await _start("github")


async def _start(provider: str) -> Response:
    svc = services()
    redirect_uri = request.args.get("redirect_uri") or f"{svc.config.redirect_uri}/v1/auth/callback"
    front = request.args.get("frontend_callback") or None
    if front is not None and not frontend_callback.allowed(front, svc.config):
        log.info("oauth start refused: frontend_callback not allowed", extra={"provider": provider})
        raise ApiError(400, "frontend_callback is not an allowed origin")
    unreachable = ApiError(502, f"Failed to communicate with {_DISPLAY[provider]} OAuth provider")
    if not _absolute_url(redirect_uri):
        raise unreachable
    auth = build_authorization_request(provider_config(provider, svc.config), redirect_uri)
    try:
        await oauth_store.save_state(
            svc.db, auth.state, provider, redirect_uri, front, auth.code_verifier
        )
    except Exception as error:
        log.error(
            "oauth state not stored", extra={"provider": provider, "error": type(error).__name__}
        )
        raise unreachable from None
    return Response("", status=307, headers={"Location": auth.url, "Cache-Control": "no-store"})


def _failed() -> ApiError:
    return ApiError(
        401,
        "OAuth authentication failed",
        "Failed to authenticate with the OAuth provider. Please try again.",
    )


@bp.get("/callback")
async def callback() -> Response:
    """Finish an OAuth sign-in: redirects to the frontend with a session token."""
    code, state = request.args.get("code"), request.args.get("state")
    for name, value in (("code", code), ("state", state)):
        if value is None:
            raise TextError(400, f"Failed to deserialize query string: missing field `{name}`")
    assert code is not None and state is not None
    svc = services()
    try:
        stored = await oauth_store.consume_state(svc.db, state)
    except Exception as error:
        log.error("oauth state lookup failed", extra={"error": type(error).__name__})
        raise _failed() from None
    if stored is None or stored.provider not in _DISPLAY:
        log.info("oauth callback refused: state unknown, used or expired")
        raise _failed()
    try:
        profile, tokens = await complete_authorization(
            provider_config(stored.provider, svc.config),
            code=code,
            redirect_uri=stored.redirect_uri,
            code_verifier=stored.code_verifier,
        )
    except OAuthFlowError:
        raise _failed() from None  # already logged, without secrets
    except Exception as error:
        log.warning(
            "oauth exchange error",
            extra={"provider": stored.provider, "error": type(error).__name__},
        )
        raise _failed() from None
    identity = login.Identity(
        profile.provider, profile.provider_user_id, profile.email, profile.name, profile.avatar_url
    )
    try:
        signed = await login.sign_in(svc, identity, tokens)
    except login.LoginFailed as error:
        log.warning(
            "oauth sign-in failed", extra={"provider": stored.provider, "reason": error.reason}
        )
        raise _failed() from None
    base = stored.frontend_callback or svc.config.frontend_url
    assert signed.session.token is not None
    location = (
        f"{base}/auth/callback?token={_enc(signed.session.token)}"
        f"&session_id={_enc(str(signed.session.id))}"
        f"&expires_at={_enc(ts_offset(signed.session.expires_at))}"
    )
    if signed.is_new_user:
        location += "&is_new_user=true"
    return Response("", status=307, headers={"Location": location, "Cache-Control": "no-store"})


def _enc(value: str) -> str:
    return quote(value, safe="")
