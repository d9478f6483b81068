"""Google and GitHub OAuth through authlib (under Trio) against the local fake providers."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest
import trio

from privchat.auth import oauth_providers as oauth
from privchat.auth.oauth_providers import OAuthFlowError, OAuthProviderConfig
from tests.fakes import FakeRequest, Reply, serve_handler
from tests.fakes.oauth_providers import (
    FakeOAuthProviders,
    github_email,
    serve_fake_oauth_providers,
)

REDIRECT_URI = "http://localhost:8080/v1/auth/callback"


@dataclass
class Providers:
    fake: FakeOAuthProviders
    base_url: str
    google: OAuthProviderConfig
    github: OAuthProviderConfig


@pytest.fixture
async def providers(nursery: trio.Nursery) -> Providers:
    fake = FakeOAuthProviders()
    base_url = await nursery.start(serve_fake_oauth_providers, fake)
    env = fake.env(base_url)
    google = oauth.google_provider(
        env["GOOGLE_CLIENT_ID"],
        env["GOOGLE_CLIENT_SECRET"],
        authorize_url=env["GOOGLE_AUTHORIZE_URL"],
        token_url=env["GOOGLE_TOKEN_URL"],
        userinfo_url=env["GOOGLE_USERINFO_URL"],
    )
    github = oauth.github_provider(
        env["GITHUB_CLIENT_ID"],
        env["GITHUB_CLIENT_SECRET"],
        authorize_url=env["GITHUB_AUTHORIZE_URL"],
        token_url=env["GITHUB_TOKEN_URL"],
        api_url=env["GITHUB_API_URL"],
    )
    return Providers(fake, base_url, google, github)


@pytest.fixture
async def browser() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(follow_redirects=False) as http:
        yield http


async def visit(browser: httpx2.AsyncClient, url: str) -> dict[str, str]:
    """Follow the authorize URL like a browser would; return the query of the redirect back."""
    response = await browser.get(url)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI)
    return dict(parse_qsl(urlsplit(location).query))


async def login(
    browser: httpx2.AsyncClient, provider: OAuthProviderConfig
) -> tuple[oauth.OAuthProfile, oauth.OAuthTokenSet]:
    start = oauth.build_authorization_request(provider, REDIRECT_URI)
    back = await visit(browser, start.url)
    assert back["state"] == start.state
    return await oauth.complete_authorization(
        provider, code=back["code"], redirect_uri=REDIRECT_URI, code_verifier=start.code_verifier
    )


async def flow_error(
    provider: OAuthProviderConfig, *, code: str, verifier: str | None, redirect: str = REDIRECT_URI
) -> OAuthFlowError:
    with pytest.raises(OAuthFlowError) as caught:
        await oauth.complete_authorization(
            provider, code=code, redirect_uri=redirect, code_verifier=verifier
        )
    return caught.value


# --- authorization URL -------------------------------------------------------------------------


def test_authorization_url_google() -> None:
    provider = oauth.google_provider("cid", "secret")
    start = oauth.build_authorization_request(provider, "https://api.example/v1/auth/callback")
    parts = urlsplit(start.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == oauth.GOOGLE_AUTHORIZE_URL
    assert [k for k, _ in parse_qsl(parts.query)] == [
        "response_type",
        "client_id",
        "state",
        "redirect_uri",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ]
    assert "&scope=openid+email+profile&" in start.url
    assert "redirect_uri=https%3A%2F%2Fapi.example%2Fv1%2Fauth%2Fcallback" in start.url
    query = dict(parse_qsl(parts.query))
    assert query["response_type"] == "code" and query["client_id"] == "cid"
    assert query["state"] == start.state and len(start.state) == 22
    assert base64.urlsafe_b64decode(start.state + "==") and "=" not in start.state
    assert start.code_verifier is not None and 43 <= len(start.code_verifier) <= 128
    digest = hashlib.sha256(start.code_verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["code_challenge_method"] == "S256"
    assert "secret" not in start.url
    assert start.state not in repr(start) and start.code_verifier not in repr(start)


def test_authorization_url_github_and_fresh_state() -> None:
    provider = oauth.github_provider("cid", "secret")
    first = oauth.build_authorization_request(provider, REDIRECT_URI)
    second = oauth.build_authorization_request(provider, REDIRECT_URI)
    assert first.url.startswith(oauth.GITHUB_AUTHORIZE_URL + "?response_type=code&client_id=cid")
    assert "&scope=user%3Aemail+read%3Auser&" in first.url
    assert first.state != second.state and first.code_verifier != second.code_verifier


def test_authorization_url_without_pkce_and_with_given_state() -> None:
    provider = OAuthProviderConfig(
        "github", "cid", "s", "https://p.example/auth?x=1", "t", "a", ("a", "b"), use_pkce=False
    )
    start = oauth.build_authorization_request(provider, REDIRECT_URI, state="fixed")
    assert start.code_verifier is None
    assert start.url == (
        "https://p.example/auth?x=1&response_type=code&client_id=cid&state=fixed"
        "&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fv1%2Fauth%2Fcallback&scope=a+b"
    )


def test_new_state_shape() -> None:
    states = {oauth.new_state() for _ in range(50)}
    assert len(states) == 50 and all(len(s) == 22 for s in states)


# --- Google ------------------------------------------------------------------------------------


async def test_google_code_flow(providers: Providers, browser: httpx2.AsyncClient) -> None:
    fake = providers.fake
    fake.add_google_user("1098", "ann@example.com", name="Ann Lee", picture="https://p/ann.png")
    before = datetime.now(UTC)
    profile, tokens = await login(browser, providers.google)
    assert profile == oauth.OAuthProfile(
        "google", "1098", "ann@example.com", "Ann Lee", "https://p/ann.png"
    )
    assert tokens.access_token.startswith("ya29.") and tokens.refresh_token is None
    assert tokens.expires_at is not None
    assert before + timedelta(seconds=3598) <= tokens.expires_at
    assert tokens.expires_at <= datetime.now(UTC) + timedelta(seconds=3600)
    [token_request] = fake.recorded("google", "token")
    assert token_request.client_auth == "basic"
    assert token_request.headers["accept"] == "application/json"
    assert token_request.form["grant_type"] == "authorization_code"
    assert token_request.form["redirect_uri"] == REDIRECT_URI
    assert "code_verifier" in token_request.form and "client_secret" not in token_request.form
    [userinfo] = fake.recorded("google", "userinfo")
    assert userinfo.headers["authorization"] == f"Bearer {tokens.access_token}"
    assert "ann@example.com" not in repr(profile) and "Ann" not in repr(profile)
    assert tokens.access_token not in repr(tokens)


async def test_google_optional_fields_and_refresh_token(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.add_google_user("7", "bo@example.com")
    providers.fake.refresh_tokens = True
    providers.fake.google_expires_in = None
    profile, tokens = await login(browser, providers.google)
    assert profile.name is None and profile.avatar_url is None
    assert tokens.refresh_token is not None and tokens.refresh_token.startswith("1//")
    assert tokens.expires_at is None


async def test_google_unverified_email_is_refused(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.add_google_user("8", "x@example.com", verified_email=False)
    with pytest.raises(OAuthFlowError) as caught:
        await login(browser, providers.google)
    assert caught.value.stage == "email"


async def test_google_login_hint_picks_the_user(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.add_google_user("1", "one@example.com")
    providers.fake.add_google_user("2", "two@example.com")
    start = oauth.build_authorization_request(providers.google, REDIRECT_URI)
    back = await visit(browser, start.url + "&login_hint=1")
    profile, _ = await oauth.complete_authorization(
        providers.google,
        code=back["code"],
        redirect_uri=REDIRECT_URI,
        code_verifier=start.code_verifier,
    )
    assert profile.provider_user_id == "1"


# --- GitHub ------------------------------------------------------------------------------------


async def test_github_code_flow(providers: Providers, browser: httpx2.AsyncClient) -> None:
    fake = providers.fake
    fake.add_github_user(
        583231,
        "octocat",
        name="The Octocat",
        avatar_url="https://avatars.example/583231",
        email="public@example.com",
        emails=[
            github_email("other@example.com", primary=False),
            github_email("octo@example.com", primary=True),
        ],
    )
    profile, tokens = await login(browser, providers.github)
    assert profile == oauth.OAuthProfile(
        "github", "583231", "octo@example.com", "The Octocat", "https://avatars.example/583231"
    )
    assert tokens.access_token.startswith("gho_") and tokens.expires_at is None
    [token_request] = fake.recorded("github", "token")
    assert token_request.client_auth == "basic"
    assert "code_verifier" in token_request.form
    for endpoint in ("user", "emails"):
        [request] = fake.recorded("github", endpoint)
        assert request.headers["authorization"] == f"Bearer {tokens.access_token}"
        assert request.headers["user-agent"] == oauth.USER_AGENT
        assert request.headers["accept"] == "application/vnd.github+json"


async def test_github_without_public_email(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.add_github_user(9, "shy", email=None, emails=[github_email("shy@example.com")])
    profile, _ = await login(browser, providers.github)
    assert profile.email == "shy@example.com" and profile.name is None
    assert profile.provider_user_id == "9"


async def test_github_unverified_primary_falls_back_to_a_verified_address(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.add_github_user(
        10,
        "mixed",
        emails=[
            github_email("claimed@example.com", primary=True, verified=False),
            github_email("real@example.com", primary=False, verified=True),
        ],
    )
    profile, _ = await login(browser, providers.github)
    assert profile.email == "real@example.com"


async def test_github_without_any_verified_email(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.add_github_user(
        11, "nomail", emails=[github_email("claimed@example.com", verified=False)]
    )
    with pytest.raises(OAuthFlowError) as caught:
        await login(browser, providers.github)
    assert caught.value.stage == "email"


async def test_github_emails_endpoint_failing(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.emails_status = 403
    providers.fake.add_github_user(12, "pub", email="pub@example.com")
    profile, _ = await login(browser, providers.github)
    assert profile.email == "pub@example.com"
    providers.fake.add_github_user(13, "nopub", email=None)
    with pytest.raises(OAuthFlowError) as caught:
        await login(browser, providers.github)
    assert caught.value.stage == "email"


async def test_github_expiring_tokens(providers: Providers, browser: httpx2.AsyncClient) -> None:
    providers.fake.github_expires_in = 28800
    providers.fake.refresh_tokens = True
    providers.fake.add_github_user(14, "app", emails=[github_email("app@example.com")])
    _, tokens = await login(browser, providers.github)
    assert tokens.refresh_token is not None and tokens.refresh_token.startswith("ghr_")
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["google", "github"])
async def test_pkce_mismatch(providers: Providers, browser: httpx2.AsyncClient, name: str) -> None:
    providers.fake.add_google_user("1", "a@example.com")
    providers.fake.add_github_user(1, "a", emails=[github_email("a@example.com")])
    provider = providers.google if name == "google" else providers.github
    start = oauth.build_authorization_request(provider, REDIRECT_URI)
    back = await visit(browser, start.url)
    other = oauth.build_authorization_request(provider, REDIRECT_URI).code_verifier
    error = await flow_error(provider, code=back["code"], verifier=other)
    assert error.stage == "token" and error.provider_error == "invalid_grant"
    error = await flow_error(provider, code=back["code"], verifier=None)
    assert error.provider_error == "invalid_grant"
    # the right verifier still works: failed attempts do not burn the code
    profile, _ = await oauth.complete_authorization(
        provider, code=back["code"], redirect_uri=REDIRECT_URI, code_verifier=start.code_verifier
    )
    assert profile.email == "a@example.com"


@pytest.mark.parametrize(
    ("name", "expected"), [("google", "invalid_grant"), ("github", "bad_verification_code")]
)
async def test_code_is_one_time(
    providers: Providers, browser: httpx2.AsyncClient, name: str, expected: str
) -> None:
    providers.fake.add_google_user("1", "a@example.com")
    providers.fake.add_github_user(1, "a", emails=[github_email("a@example.com")])
    provider = providers.google if name == "google" else providers.github
    start = oauth.build_authorization_request(provider, REDIRECT_URI)
    back = await visit(browser, start.url)
    await oauth.complete_authorization(
        provider, code=back["code"], redirect_uri=REDIRECT_URI, code_verifier=start.code_verifier
    )
    error = await flow_error(provider, code=back["code"], verifier=start.code_verifier)
    assert error.provider_error == expected
    error = await flow_error(provider, code="made-up", verifier=start.code_verifier)
    assert error.provider_error == expected


async def test_redirect_uri_must_match(providers: Providers, browser: httpx2.AsyncClient) -> None:
    providers.fake.add_google_user("1", "a@example.com")
    start = oauth.build_authorization_request(providers.google, REDIRECT_URI)
    back = await visit(browser, start.url)
    error = await flow_error(
        providers.google,
        code=back["code"],
        verifier=start.code_verifier,
        redirect="http://elsewhere/cb",
    )
    assert error.provider_error == "redirect_uri_mismatch"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("google", "invalid_client"), ("github", "incorrect_client_credentials")],
)
async def test_wrong_client_secret(
    providers: Providers, browser: httpx2.AsyncClient, name: str, expected: str
) -> None:
    providers.fake.add_google_user("1", "a@example.com")
    providers.fake.add_github_user(1, "a", emails=[github_email("a@example.com")])
    provider = providers.google if name == "google" else providers.github
    start = oauth.build_authorization_request(provider, REDIRECT_URI)
    back = await visit(browser, start.url)
    wrong = OAuthProviderConfig(**{**provider.__dict__, "client_secret": "nope"})
    error = await flow_error(wrong, code=back["code"], verifier=start.code_verifier)
    assert error.stage == "token" and error.provider_error == expected


@pytest.mark.parametrize("name", ["google", "github"])
async def test_user_denies_access(
    providers: Providers, browser: httpx2.AsyncClient, name: str
) -> None:
    providers.fake.deny = "access_denied"
    provider = providers.google if name == "google" else providers.github
    start = oauth.build_authorization_request(provider, REDIRECT_URI)
    back = await visit(browser, start.url)
    assert back["error"] == "access_denied" and back["state"] == start.state
    assert "code" not in back


async def test_token_endpoint_server_error(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.add_google_user("1", "a@example.com")
    start = oauth.build_authorization_request(providers.google, REDIRECT_URI)
    back = await visit(browser, start.url)
    providers.fake.token_error = (503, {"error": "temporarily_unavailable"})
    error = await flow_error(providers.google, code=back["code"], verifier=start.code_verifier)
    assert error.stage == "token" and "503" in error.reason
    providers.fake.token_error = (200, {"token_type": "bearer"})
    error = await flow_error(providers.google, code=back["code"], verifier=start.code_verifier)
    assert error.reason == "the token response has no access_token"
    providers.fake.token_error = (400, {"error": "invalid_request"})
    error = await flow_error(providers.google, code=back["code"], verifier=start.code_verifier)
    assert error.provider_error == "invalid_request"


@pytest.mark.parametrize("name", ["google", "github"])
async def test_profile_endpoint_failure(
    providers: Providers, browser: httpx2.AsyncClient, name: str
) -> None:
    providers.fake.add_google_user("1", "a@example.com")
    providers.fake.add_github_user(1, "a", emails=[github_email("a@example.com")])
    providers.fake.userinfo_status = 500
    provider = providers.google if name == "google" else providers.github
    with pytest.raises(OAuthFlowError) as caught:
        await login(browser, provider)
    assert caught.value.stage == "profile" and "500" in caught.value.reason


async def test_provider_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = oauth.google_provider("c", "s", token_url=f"http://127.0.0.1:{port}/token")
    error = await flow_error(provider, code="c", verifier="v")
    assert error.stage == "transport"


async def test_provider_too_slow(nursery: trio.Nursery) -> None:
    never = trio.Event()

    async def hang(request: FakeRequest) -> Reply:
        await never.wait()
        return Reply()

    url = await nursery.start(serve_handler, hang)
    provider = oauth.github_provider("c", "s", token_url=f"{url}/token")
    with pytest.raises(OAuthFlowError) as caught:
        await oauth.complete_authorization(
            provider, code="c", redirect_uri=REDIRECT_URI, code_verifier=None, time_limit=0.2
        )
    assert caught.value.stage == "transport" and "0.2" in caught.value.reason


# --- the fake itself ---------------------------------------------------------------------------


async def test_fake_accepts_form_credentials_and_answers_github_in_form_encoding(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    fake = providers.fake
    fake.add_github_user(1, "a", emails=[github_email("a@example.com")])
    start = oauth.build_authorization_request(providers.github, REDIRECT_URI)
    back = await visit(browser, start.url)
    env = fake.env(providers.base_url)
    form = {
        "client_id": fake.github_client_id,
        "client_secret": fake.github_client_secret,
        "code": back["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": start.code_verifier or "",
    }
    response = await browser.post(env["GITHUB_TOKEN_URL"], data=form)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-www-form-urlencoded"
    answer = dict(parse_qsl(response.text))
    assert answer["access_token"].startswith("gho_") and answer["token_type"] == "bearer"
    assert fake.recorded("github", "token")[-1].client_auth == "post"
    api = env["GITHUB_API_URL"]
    headers = {"Authorization": f"token {answer['access_token']}"}
    user = await browser.get(f"{api}/user", headers=headers)
    assert user.status_code == 200 and user.json()["id"] == 1
    bad = await browser.get(f"{api}/user", headers={"Authorization": "token nope"})
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"


async def test_fake_rejects_mixed_or_missing_credentials(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    fake = providers.fake
    fake.add_google_user("1", "a@example.com")
    url = fake.env(providers.base_url)["GOOGLE_TOKEN_URL"]
    form = {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT_URI}
    response = await browser.post(url, data=form)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    mixed = {**form, "client_id": fake.google_client_id, "client_secret": "other"}
    response = await browser.post(
        url, data=mixed, auth=(fake.google_client_id, fake.google_client_secret)
    )
    assert response.status_code == 401


async def test_fake_authorize_rejects_unknown_client(
    providers: Providers, browser: httpx2.AsyncClient
) -> None:
    providers.fake.add_google_user("1", "a@example.com")
    wrong = OAuthProviderConfig(**{**providers.google.__dict__, "client_id": "unknown"})
    response = await browser.get(oauth.build_authorization_request(wrong, REDIRECT_URI).url)
    assert response.status_code == 400
