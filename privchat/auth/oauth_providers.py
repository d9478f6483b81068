"""Google and GitHub OAuth, the provider side (api.md §2.2.1-2.2.2, deviation D6), with authlib.

No database and no HTTP server here: the route stores the state, calls these functions with the
provider URLs, client credentials and redirect URI, and turns `OAuthFlowError` into its 401.

1. `build_authorization_request(provider, redirect_uri)` gives the provider URL to redirect to,
   the one-time `state` (16 random bytes, base64url, 22 chars) and the PKCE S256
   `code_verifier` to store with the state (D6). Query order: response_type, client_id, state,
   redirect_uri, scope (`+` for spaces), then code_challenge and code_challenge_method.
2. `complete_authorization(provider, code=..., redirect_uri=..., code_verifier=...)` exchanges
   the code (authlib `AsyncOAuth2Client`, client_secret_basic, `Accept: application/json`),
   then fetches the profile: Google userinfo (`id`, `email`, `name`, `picture`), or GitHub
   `/user` (numeric `id` as its decimal string, `name`, `avatar_url`) and `/user/emails`.

E-mail choice for GitHub: the primary verified address; else the first verified one; else the
public `/user` e-mail (GitHub only shows verified addresses there). The reference takes the
primary (else first) address without looking at `verified`; privchat refuses unverified
addresses because the route links accounts by e-mail, and so does Google's
`verified_email: false`.

Nothing here logs tokens, codes, secrets, verifiers, e-mails or names.
"""

from __future__ import annotations

import functools
import logging
import secrets
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx2
import trio
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge

log = logging.getLogger(__name__)

ProviderName = Literal["google", "github"]
Stage = Literal["token", "profile", "email", "transport"]

GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_USERINFO_URL = "https://www.googleapis.com/oauth2/v2/userinfo"
GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
GITHUB_API_URL = "https://api.github.com"
GOOGLE_SCOPES = ("openid", "email", "profile")
GITHUB_SCOPES = ("user:email", "read:user")
DEFAULT_TIME_LIMIT = 15.0
USER_AGENT = "privchat"


class OAuthFlowError(Exception):
    """The code exchange or profile fetch failed; `reason` is safe to log (no secrets, no PII)."""

    def __init__(self, stage: Stage, reason: str, provider_error: str | None = None) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.provider_error = provider_error


@dataclass(frozen=True)
class OAuthProviderConfig:
    """Where a provider lives and who we are to it. `api_url`: Google userinfo URL, GitHub API base."""

    name: ProviderName
    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    api_url: str
    scopes: tuple[str, ...]
    use_pkce: bool = True


def google_provider(
    client_id: str,
    client_secret: str,
    *,
    authorize_url: str = GOOGLE_AUTHORIZE_URL,
    token_url: str = GOOGLE_TOKEN_URL,
    userinfo_url: str = GOOGLE_USERINFO_URL,
) -> OAuthProviderConfig:
    return OAuthProviderConfig(
        "google", client_id, client_secret, authorize_url, token_url, userinfo_url, GOOGLE_SCOPES
    )


def github_provider(
    client_id: str,
    client_secret: str,
    *,
    authorize_url: str = GITHUB_AUTHORIZE_URL,
    token_url: str = GITHUB_TOKEN_URL,
    api_url: str = GITHUB_API_URL,
) -> OAuthProviderConfig:
    return OAuthProviderConfig(
        "github", client_id, client_secret, authorize_url, token_url, api_url, GITHUB_SCOPES
    )


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str = field(repr=False)
    state: str = field(repr=False)
    code_verifier: str | None = field(repr=False)


@dataclass(frozen=True)
class OAuthProfile:
    provider: ProviderName
    provider_user_id: str
    email: str = field(repr=False)
    name: str | None = field(repr=False)
    avatar_url: str | None


@dataclass(frozen=True)
class OAuthTokenSet:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None


def new_state() -> str:
    """16 random bytes, base64url without padding: 22 characters."""
    return secrets.token_urlsafe(16)


def build_authorization_request(
    provider: OAuthProviderConfig, redirect_uri: str, *, state: str | None = None
) -> AuthorizationRequest:
    state = new_state() if state is None else state
    params = [
        ("response_type", "code"),
        ("client_id", provider.client_id),
        ("state", state),
        ("redirect_uri", redirect_uri),
        ("scope", " ".join(provider.scopes)),
    ]
    verifier = None
    if provider.use_pkce:
        verifier = generate_token(64)
        params += [
            ("code_challenge", create_s256_code_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ]
    parts = urlsplit(provider.authorize_url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return AuthorizationRequest(url, state, verifier)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """Built once: loading the CA bundle takes tens of milliseconds of blocking CPU."""
    return httpx2.create_ssl_context()


def _client(
    provider: OAuthProviderConfig,
    redirect_uri: str,
    time_limit: float,
    transport: httpx2.AsyncBaseTransport | None,
    verify: ssl.SSLContext | None,
) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        redirect_uri=redirect_uri,
        timeout=time_limit,
        transport=transport,
        verify=_default_ssl_context() if verify is None else verify,
        headers={"User-Agent": USER_AGENT},
    )


async def exchange_code(
    client: AsyncOAuth2Client,
    provider: OAuthProviderConfig,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
) -> OAuthTokenSet:
    """POST the code to the token endpoint; the answer must be JSON with an `access_token`."""
    extra: dict[str, str] = {} if code_verifier is None else {"code_verifier": code_verifier}
    try:
        token: Any = await client.fetch_token(
            provider.token_url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            **extra,
        )
    except OAuthError as error:
        raise OAuthFlowError(
            "token", "the provider rejected the code exchange", error.error
        ) from None
    except httpx2.HTTPStatusError as error:
        raise OAuthFlowError(
            "token", f"the token endpoint answered HTTP {error.response.status_code}"
        ) from None
    except ValueError:
        raise OAuthFlowError("token", "the token endpoint did not answer a JSON object") from None
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuthFlowError("token", "the token response has no access_token")
    refresh_token = token.get("refresh_token")
    expires_in = token.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        expires_at = datetime.fromtimestamp(datetime.now(UTC).timestamp() + expires_in, UTC)
    elif isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
        expires_at = datetime.fromtimestamp(datetime.now(UTC).timestamp() + int(expires_in), UTC)
    return OAuthTokenSet(
        access_token, refresh_token if isinstance(refresh_token, str) else None, expires_at
    )


async def _get_json(
    client: AsyncOAuth2Client, url: str, access_token: str, stage: Stage, accept: str
) -> Any:
    response = await client.request(
        "GET",
        url,
        withhold_token=True,
        headers={"Authorization": f"Bearer {access_token}", "Accept": accept},
    )
    if response.status_code != 200:
        raise OAuthFlowError(stage, f"{urlsplit(url).path} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise OAuthFlowError(stage, f"{urlsplit(url).path} did not answer JSON") from None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def fetch_profile(
    client: AsyncOAuth2Client, provider: OAuthProviderConfig, access_token: str
) -> OAuthProfile:
    if provider.name == "google":
        return await _google_profile(client, provider, access_token)
    return await _github_profile(client, provider, access_token)


async def _google_profile(
    client: AsyncOAuth2Client, provider: OAuthProviderConfig, access_token: str
) -> OAuthProfile:
    info = await _get_json(client, provider.api_url, access_token, "profile", "application/json")
    if not isinstance(info, dict):
        raise OAuthFlowError("profile", "userinfo is not a JSON object")
    user_id, email = info.get("id"), info.get("email")
    if not isinstance(user_id, str) or not user_id:
        raise OAuthFlowError("profile", "userinfo has no string id")
    if not isinstance(email, str) or not email:
        raise OAuthFlowError("email", "userinfo has no e-mail")
    if info.get("verified_email") is False:
        raise OAuthFlowError("email", "the Google e-mail is not verified")
    return OAuthProfile(
        "google",
        user_id,
        email,
        _optional_str(info.get("name")),
        _optional_str(info.get("picture")),
    )


async def _github_profile(
    client: AsyncOAuth2Client, provider: OAuthProviderConfig, access_token: str
) -> OAuthProfile:
    base = provider.api_url.rstrip("/")
    accept = "application/vnd.github+json"
    user = await _get_json(client, f"{base}/user", access_token, "profile", accept)
    if not isinstance(user, dict):
        raise OAuthFlowError("profile", "/user is not a JSON object")
    user_id = user.get("id")
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise OAuthFlowError("profile", "/user has no numeric id")
    email = await _github_email(client, base, access_token, _optional_str(user.get("email")))
    return OAuthProfile(
        "github",
        str(user_id),
        email,
        _optional_str(user.get("name")),
        _optional_str(user.get("avatar_url")),
    )


async def _github_email(
    client: AsyncOAuth2Client, base: str, access_token: str, public_email: str | None
) -> str:
    try:
        emails = await _get_json(
            client, f"{base}/user/emails", access_token, "email", "application/vnd.github+json"
        )
    except OAuthFlowError:
        if public_email is not None:
            return public_email
        raise
    entries = [e for e in emails if isinstance(e, dict)] if isinstance(emails, list) else []
    verified = [
        e["email"]
        for e in sorted(entries, key=lambda e: e.get("primary") is not True)
        if e.get("verified") is True and isinstance(e.get("email"), str) and e["email"]
    ]
    if verified:
        return verified[0]
    if public_email is not None:
        return public_email
    raise OAuthFlowError("email", "the GitHub account has no verified e-mail")


async def complete_authorization(
    provider: OAuthProviderConfig,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    transport: httpx2.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | None = None,
) -> tuple[OAuthProfile, OAuthTokenSet]:
    """Exchange the code and fetch the profile, all within `time_limit` seconds.

    One short-lived authlib client per login; `verify` defaults to a process-wide SSL context.
    """
    with trio.move_on_after(time_limit) as scope:
        try:
            async with _client(provider, redirect_uri, time_limit, transport, verify) as client:
                tokens = await exchange_code(
                    client,
                    provider,
                    code=code,
                    redirect_uri=redirect_uri,
                    code_verifier=code_verifier,
                )
                profile = await fetch_profile(client, provider, tokens.access_token)
        except OAuthFlowError as error:
            log.info("%s OAuth failed at %s: %s", provider.name, error.stage, error.reason)
            raise
        except httpx2.HTTPError as error:
            log.info("%s OAuth transport error: %s", provider.name, type(error).__name__)
            raise OAuthFlowError("transport", type(error).__name__) from None
        return profile, tokens
    assert scope.cancelled_caught
    log.info("%s OAuth timed out after %g s", provider.name, time_limit)
    raise OAuthFlowError("transport", f"no answer within {time_limit:g} s")
