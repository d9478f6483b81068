"""Google and GitHub sign-in end to end against the local fake providers (§2.2.1-2.2.2, D6).

The test plays the browser: privchat's start route → the fake's authorize URL → privchat's
callback → the frontend URL with the session token.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import trio

from privchat.config import Config
from privchat.runtime import Running

from .conftest import LOG_FILE, auth, login, start_server
from .fakes.oauth_providers import FakeOAuthProviders, github_email, serve_fake_oauth_providers

FRONTEND = "https://chat.example.org"
CALLBACK_ERROR = {
    "code": "unauthorized",
    "message": "OAuth authentication failed",
    "details": "Failed to authenticate with the OAuth provider. Please try again.",
}


@dataclass
class OAuthEnv:
    fake: FakeOAuthProviders
    server: Running
    client: httpx2.AsyncClient

    @property
    def db(self):  # noqa: ANN201
        return self.server.services.db

    async def start(self, provider: str, **params: str) -> httpx2.Response:
        params.setdefault("redirect_uri", f"{self.server.url}/v1/auth/callback")
        return await self.client.get(f"/v1/auth/{provider}", params=params)

    async def authorize(self, provider: str, **params: str) -> str:
        """Start and pass the provider's consent screen; returns privchat's callback URL."""
        started = await self.start(provider, **params)
        assert started.status_code == 307, started.text
        async with httpx2.AsyncClient() as browser:
            consent = await browser.get(started.headers["location"])
        assert consent.status_code == 302, consent.text
        return consent.headers["location"]

    async def sign_in(self, provider: str, **params: str) -> httpx2.Response:
        return await self.client.get(await self.authorize(provider, **params))


def landing(response: httpx2.Response) -> tuple[str, dict[str, str]]:
    assert response.status_code == 307, response.text
    location = response.headers["location"]
    base, _, query = location.partition("?")
    return base, {k: v[0] for k, v in parse_qs(query).items()}


@pytest.fixture
async def oauth(nursery: trio.Nursery, config: Config) -> AsyncIterator[OAuthEnv]:
    fake = FakeOAuthProviders()
    base = await nursery.start(serve_fake_oauth_providers, fake)
    env = fake.env(base)
    server = await start_server(
        nursery,
        config,
        frontend_url=FRONTEND,
        google_authorize_url=env["GOOGLE_AUTHORIZE_URL"],
        google_token_url=env["GOOGLE_TOKEN_URL"],
        google_userinfo_url=env["GOOGLE_USERINFO_URL"],
        github_authorize_url=env["GITHUB_AUTHORIZE_URL"],
        github_token_url=env["GITHUB_TOKEN_URL"],
        github_api_url=env["GITHUB_API_URL"],
        google_client_id=fake.google_client_id,
        google_client_secret=fake.google_client_secret,
        github_client_id=fake.github_client_id,
        github_client_secret=fake.github_client_secret,
    )
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
        yield OAuthEnv(fake, server, client)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def activity(env: OAuthEnv, user_id: str) -> list[tuple[str, str]]:
    await env.server.services.activity.flush()
    rows = await env.db.fetch(
        "SELECT activity_type, auth_method FROM user_activity_log WHERE user_id = $1"
        " ORDER BY created_at",
        uuid.UUID(user_id),
    )
    return [(r["activity_type"], r["auth_method"]) for r in rows]


async def test_start_redirects_with_state_and_pkce(oauth: OAuthEnv) -> None:
    for provider, scope in (("google", "openid email profile"), ("github", "user:email read:user")):
        response = await oauth.client.get(f"/v1/auth/{provider}")
        assert response.status_code == 307
        location = response.headers["location"]
        query = location.split("?", 1)[1]
        names = [pair.split("=")[0] for pair in query.split("&")]
        assert names == [
            "response_type", "client_id", "state", "redirect_uri", "scope",
            "code_challenge", "code_challenge_method",
        ]  # fmt: skip
        params = {k: v[0] for k, v in parse_qs(query).items()}
        assert params["redirect_uri"] == "http://localhost:8080/v1/auth/callback"  # the default
        assert (
            params["scope"] == scope
            and f"scope={scope.replace(' ', '+').replace(':', '%3A')}" in query
        )
        assert params["code_challenge_method"] == "S256" and len(params["state"]) == 22
        row = await oauth.db.fetchrow(
            "SELECT provider, redirect_uri, frontend_callback, code_verifier FROM oauth_states"
            " WHERE state = $1",
            params["state"],
        )
        assert row["provider"] == provider and row["frontend_callback"] is None
        assert row["code_verifier"]  # the verifier stays in PostgreSQL, the challenge goes out
        assert params["code_challenge"] != row["code_verifier"]


async def test_google_new_user_then_returning_user(oauth: OAuthEnv) -> None:
    email = unique("ann")
    oauth.fake.add_google_user(
        f"g-{uuid.uuid4().hex}", email, name="Ann", picture="https://p/a.png"
    )
    base, params = landing(await oauth.sign_in("google"))
    assert base == f"{FRONTEND}/auth/callback"
    assert params["token"].startswith("sess_") and len(params["token"]) == 37
    assert params["is_new_user"] == "true"
    me = await oauth.client.get("/v1/users/me", headers=auth(params["token"]))
    assert me.status_code == 200
    user = me.json()["user"]
    assert (user["email"], user["name"], user["avatar_url"]) == (email, "Ann", "https://p/a.png")
    assert [a["provider"] for a in me.json()["linked_accounts"]] == ["google"]
    session = await oauth.db.fetchrow(
        "SELECT id, expires_at FROM sessions WHERE token_hash = $1",
        hashlib.sha256(params["token"].encode()).hexdigest(),
    )
    assert params["session_id"] == str(session["id"])
    token_row = await oauth.db.fetchrow(
        "SELECT access_token, expires_at FROM oauth_tokens WHERE user_id = $1 AND provider = 'google'",
        uuid.UUID(user["id"]),
    )
    assert token_row["access_token"].startswith("ya29.") and token_row["expires_at"] is not None

    again_base, again = landing(await oauth.sign_in("google"))
    assert again_base == base and "is_new_user" not in again
    assert again["token"] != params["token"]
    me2 = (await oauth.client.get("/v1/users/me", headers=auth(again["token"]))).json()
    assert me2["user"]["id"] == user["id"]
    assert await activity(oauth, user["id"]) == [("signup", "google"), ("login", "google")]


async def test_redirect_is_percent_encoded(oauth: OAuthEnv) -> None:
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", unique("enc"))
    response = await oauth.sign_in("google")
    location = response.headers["location"]
    assert "&expires_at=" in location and "%3A" in location and "%2B00%3A00" in location
    assert location.endswith("&is_new_user=true")
    assert response.headers["cache-control"] == "no-store"


async def test_github_new_user_primary_email(oauth: OAuthEnv) -> None:
    email = unique("octo")
    gh_id = int(uuid.uuid4().int % 10**9)
    oauth.fake.add_github_user(
        gh_id,
        "octo",
        name="Octo Cat",
        avatar_url="https://avatars/1",
        emails=[github_email(unique("other"), primary=False), github_email(email)],
    )
    _, params = landing(await oauth.sign_in("github", frontend_callback="https://app.near.ai"))
    assert params["is_new_user"] == "true"
    me = (await oauth.client.get("/v1/users/me", headers=auth(params["token"]))).json()
    assert me["user"]["email"] == email and me["user"]["name"] == "Octo Cat"
    assert me["user"]["avatar_url"] == "https://avatars/1"
    linked = await oauth.db.fetchval(
        "SELECT provider_user_id FROM oauth_accounts WHERE provider = 'github' AND user_id = $1",
        uuid.UUID(me["user"]["id"]),
    )
    assert linked == str(gh_id)  # the numeric id as its decimal string
    token_call = oauth.fake.recorded("github", "token")[-1]
    assert token_call.client_auth == "basic" and token_call.form.get("code_verifier")
    _, again = landing(await oauth.sign_in("github"))
    assert "is_new_user" not in again
    assert await activity(oauth, me["user"]["id"]) == [("signup", "github"), ("login", "github")]


async def test_github_lands_on_frontend_callback(oauth: OAuthEnv) -> None:
    oauth.fake.add_github_user(
        7_000_000 + uuid.uuid4().int % 10**6, "fc", emails=[github_email(unique("fc"))]
    )
    base, _ = landing(await oauth.sign_in("github", frontend_callback="https://app.near.ai"))
    assert base == "https://app.near.ai/auth/callback"


async def test_link_by_email_to_existing_user(oauth: OAuthEnv) -> None:
    """An existing user with the provider's e-mail gets the account linked; not a new user."""
    email = unique("existing")
    token = await login(oauth.client, email)
    before = (await oauth.client.get("/v1/users/me", headers=auth(token))).json()["user"]["id"]
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", email, name="Renamed")
    _, params = landing(await oauth.sign_in("google"))
    assert "is_new_user" not in params
    me = (await oauth.client.get("/v1/users/me", headers=auth(params["token"]))).json()
    assert me["user"]["id"] == before and me["user"]["name"] == "Test User"  # not refreshed
    assert [a["provider"] for a in me["linked_accounts"]] == ["google"]
    oauth.fake.add_github_user(
        8_000_000 + uuid.uuid4().int % 10**6, "linker", emails=[github_email(email)]
    )
    _, gh = landing(await oauth.sign_in("github"))
    me = (await oauth.client.get("/v1/users/me", headers=auth(gh["token"]))).json()
    assert me["user"]["id"] == before
    assert {a["provider"] for a in me["linked_accounts"]} == {"google", "github"}
    assert await activity(oauth, before) == [("login", "google"), ("login", "github")]


async def test_provider_denies_consent(oauth: OAuthEnv) -> None:
    """The provider's error redirect has no `code`: 400 E-TEXT; nothing signed in."""
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", unique("deny"))
    oauth.fake.deny = "access_denied"
    callback = await oauth.authorize("google")
    assert "error=access_denied" in callback
    response = await oauth.client.get(callback)
    assert response.status_code == 400
    assert response.text.startswith("Failed to deserialize query string")
    assert response.headers["content-type"].startswith("text/plain")


async def test_provider_rejects_code_exchange(oauth: OAuthEnv) -> None:
    """A token endpoint error is the 401 JSON of §2.2.2, not a redirect; no user is created."""
    email = unique("tokerr")
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", email)
    oauth.fake.token_error = (400, {"error": "invalid_grant", "error_description": "Bad Request"})
    response = await oauth.sign_in("google")
    assert response.status_code == 401 and response.json() == CALLBACK_ERROR
    assert not await oauth.db.fetchval("SELECT COUNT(*) FROM users WHERE email = $1", email)


async def test_profile_errors_fail_cleanly(oauth: OAuthEnv) -> None:
    email = unique("noemail")
    oauth.fake.add_github_user(9_000_000 + uuid.uuid4().int % 10**6, "noemail", emails=[])
    response = await oauth.sign_in("github")
    assert response.status_code == 401 and response.json() == CALLBACK_ERROR
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", email)
    oauth.fake.userinfo_status = 500
    response = await oauth.sign_in("google")
    assert response.status_code == 401 and response.json() == CALLBACK_ERROR
    assert not await oauth.db.fetchval("SELECT COUNT(*) FROM users WHERE email = $1", email)


async def test_wrong_code_fails(oauth: OAuthEnv) -> None:
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", unique("code"))
    callback = await oauth.authorize("google")
    parts = urlsplit(callback)
    state = parse_qs(parts.query)["state"][0]
    response = await oauth.client.get(
        "/v1/auth/callback", params={"code": "forged", "state": state}
    )
    assert response.status_code == 401 and response.json() == CALLBACK_ERROR


async def test_reused_state_is_rejected(oauth: OAuthEnv) -> None:
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", unique("reuse"))
    callback = await oauth.authorize("google")
    first = await oauth.client.get(callback)
    assert first.status_code == 307
    second = await oauth.client.get(callback)
    assert second.status_code == 401 and second.json() == CALLBACK_ERROR


async def test_expired_state_is_rejected(oauth: OAuthEnv) -> None:
    """D6: a state older than 10 minutes fails (and is consumed), even with a valid code."""
    email = unique("expired")
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", email)
    callback = await oauth.authorize("google")
    state = parse_qs(urlsplit(callback).query)["state"][0]
    await oauth.db.execute(
        "UPDATE oauth_states SET created_at = NOW() - INTERVAL '10 minutes 1 second' WHERE state = $1",
        state,
    )
    response = await oauth.client.get(callback)
    assert response.status_code == 401 and response.json() == CALLBACK_ERROR
    assert not await oauth.db.fetchval("SELECT COUNT(*) FROM oauth_states WHERE state = $1", state)
    assert not await oauth.db.fetchval("SELECT COUNT(*) FROM users WHERE email = $1", email)


async def test_state_within_ten_minutes_still_works(oauth: OAuthEnv) -> None:
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", unique("nine"))
    callback = await oauth.authorize("google")
    state = parse_qs(urlsplit(callback).query)["state"][0]
    await oauth.db.execute(
        "UPDATE oauth_states SET created_at = NOW() - INTERVAL '9 minutes' WHERE state = $1", state
    )
    assert (await oauth.client.get(callback)).status_code == 307


async def test_unknown_state_and_missing_parameters(oauth: OAuthEnv) -> None:
    unknown = await oauth.client.get("/v1/auth/callback", params={"code": "c", "state": "nope"})
    assert unknown.status_code == 401 and unknown.json() == CALLBACK_ERROR
    for params in ({"code": "c"}, {"state": "s"}, {}):
        response = await oauth.client.get("/v1/auth/callback", params=params)
        assert response.status_code == 400
        assert response.text.startswith("Failed to deserialize query string")


async def test_d6_frontend_callback_is_checked(oauth: OAuthEnv) -> None:
    """D6: only an origin CORS allows, FRONTEND_URL's origin or the service's own origin."""
    allowed = [
        "https://app.near.ai",  # CORS wildcard *.near.ai
        "http://localhost:5173",  # CORS loopback rule
        "http://127.0.0.1:3000",
        FRONTEND,  # FRONTEND_URL's origin
        f"{FRONTEND}/sub/path",
        "http://localhost:8080",  # REDIRECT_URI's origin
    ]
    for callback in allowed:
        response = await oauth.start("google", frontend_callback=callback)
        assert response.status_code == 307, callback
    refused = [
        "https://evil.com",
        "http://app.near.ai",  # wildcards only cover https
        "https://near.ai.evil.com",
        "https://chat.example.org.evil.com",
        "https://app.near.ai@evil.com",
        "https://user:pw@app.near.ai",
        "https://app.near.ai/?next=https://evil.com",
        "https://app.near.ai#frag",
        "//evil.com",
        "javascript:alert(1)",
        "evil.com",
        "https://app.near.ai\\@evil.com",
    ]
    for callback in refused:
        response = await oauth.start("github", frontend_callback=callback)
        assert response.status_code == 400, callback
        assert response.json() == {
            "code": "bad_request",
            "message": "frontend_callback is not an allowed origin",
        }
    count = await oauth.db.fetchval(
        "SELECT COUNT(*) FROM oauth_states WHERE frontend_callback = 'https://evil.com'"
    )
    assert count == 0


async def test_invalid_redirect_uri_is_502(oauth: OAuthEnv) -> None:
    for provider, name in (("google", "Google"), ("github", "Github")):
        response = await oauth.client.get(
            f"/v1/auth/{provider}", params={"redirect_uri": "not a url"}
        )
        assert response.status_code == 502
        assert response.json() == {
            "code": "bad_gateway",
            "message": f"Failed to communicate with {name} OAuth provider",
        }


async def test_nothing_half_written_when_user_insert_fails(oauth: OAuthEnv) -> None:
    """A user row that cannot be written (e-mail over 255 chars) leaves no link and no session."""
    provider_id = f"g-{uuid.uuid4().hex}"
    oauth.fake.add_google_user(provider_id, "x" * 300 + "@example.com")
    sessions_before = await oauth.db.fetchval("SELECT COUNT(*) FROM sessions")
    response = await oauth.sign_in("google")
    assert response.status_code == 401 and response.json() == CALLBACK_ERROR
    assert not await oauth.db.fetchval(
        "SELECT COUNT(*) FROM oauth_accounts WHERE provider_user_id = $1", provider_id
    )
    assert await oauth.db.fetchval("SELECT COUNT(*) FROM sessions") == sessions_before


async def test_logs_hold_no_secrets(oauth: OAuthEnv) -> None:
    """Privacy: tokens, codes, states, e-mails and names never reach the logs."""
    email = unique("private")
    oauth.fake.add_google_user(f"g-{uuid.uuid4().hex}", email, name="Secret Name")
    callback = await oauth.authorize("google")
    query = parse_qs(urlsplit(callback).query)
    _, params = landing(await oauth.client.get(callback))
    await oauth.client.get(callback)  # a reused state, logged as a failure
    await oauth.server.services.activity.flush()
    text = LOG_FILE.read_text()
    for secret in (email, "Secret Name", params["token"], query["code"][0], query["state"][0]):
        assert secret not in text
    assert "ya29." not in text


async def test_unreachable_provider_is_401(nursery: trio.Nursery, config: Config) -> None:
    """A token endpoint nobody listens on: the callback's 401, not a crash."""
    server = await start_server(
        nursery,
        config,
        google_authorize_url="http://127.0.0.1:9/auth",
        google_token_url="http://127.0.0.1:9/token",
    )
    async with httpx2.AsyncClient(base_url=server.url) as client:
        started = await client.get("/v1/auth/google")
        state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
        response = await client.get("/v1/auth/callback", params={"code": "c", "state": state})
        assert response.status_code == 401 and response.json() == CALLBACK_ERROR
