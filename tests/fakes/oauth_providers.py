"""A fake Google and a fake GitHub OAuth provider, served together on one local HTTP server.

Start it in a test's nursery, register who will log in, and point privchat at it::

    fake = FakeOAuthProviders()
    base_url = await nursery.start(serve_fake_oauth_providers, fake)
    fake.add_google_user("g-1", "ann@example.com", name="Ann")
    fake.add_github_user(42, "octo", email=None, emails=[github_email("o@example.com")])
    env = fake.env(base_url)   # GOOGLE_* / GITHUB_* URL variables and client credentials

`env` gives the six URL variables privchat reads (spec/README.md) plus the client ids and
secrets the fake accepts:

    GOOGLE_AUTHORIZE_URL  {base}/google/o/oauth2/v2/auth
    GOOGLE_TOKEN_URL      {base}/google/token
    GOOGLE_USERINFO_URL   {base}/google/oauth2/v2/userinfo
    GITHUB_AUTHORIZE_URL  {base}/github/login/oauth/authorize
    GITHUB_TOKEN_URL      {base}/github/login/oauth/access_token
    GITHUB_API_URL        {base}/github/api          (/user and /user/emails below it)

Tests play the browser: they GET privchat's `/v1/auth/{provider}`, then GET the provider URL
from its `Location` themselves; the fake's authorize endpoint answers 302 to the `redirect_uri`
with `code` and `state` (or `error=access_denied` when `fake.deny` is set). The user who logs
in is the last one added for that provider, or the one named by `login_hint` (Google) /
`login` (GitHub) in the authorize query.

The token endpoint checks what real providers check: client credentials by HTTP Basic or
form fields, the code (one-time, issued to that client), the `redirect_uri` of the
authorization, and the PKCE `code_verifier` against a stored S256 (or plain) challenge. Errors
look like the real ones: Google answers 400/401 with `{"error", "error_description"}`; GitHub
answers 200 with `{"error", "error_description", "error_uri"}` (form-encoded unless the client
asked for JSON). Knobs: `deny`, `token_error`, `userinfo_status`, `emails_status`,
`google_expires_in`, `github_expires_in`, `refresh_tokens`. Every request is in `requests`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

import trio

from . import FakeRequest, Reply, serve_handler

Provider = Literal["google", "github"]
GITHUB_ERROR_URI = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"

GITHUB_BAD_CLIENT = "The client_id and/or client_secret passed are incorrect."
GITHUB_NO_USER_AGENT = (
    b"Request forbidden by administrative rules. "
    b"Please make sure your request has a User-Agent header"
)


@dataclass
class GoogleUser:
    id: str
    email: str
    name: str | None = None
    picture: str | None = None
    verified_email: bool = True

    def userinfo(self) -> dict[str, Any]:
        info: dict[str, Any] = {"id": self.id, "email": self.email}
        info["verified_email"] = self.verified_email
        if self.name is not None:
            info["name"] = self.name
            info["given_name"] = self.name.split(" ")[0]
        if self.picture is not None:
            info["picture"] = self.picture
        return info


def github_email(
    email: str, *, primary: bool = True, verified: bool = True, visibility: str | None = "private"
) -> dict[str, Any]:
    return {"email": email, "primary": primary, "verified": verified, "visibility": visibility}


@dataclass
class GithubUser:
    id: int
    login: str
    name: str | None = None
    avatar_url: str | None = None
    email: str | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)

    def user(self) -> dict[str, Any]:
        return {
            "login": self.login,
            "id": self.id,
            "node_id": f"U_{self.id}",
            "avatar_url": self.avatar_url,
            "type": "User",
            "name": self.name,
            "email": self.email,
        }


@dataclass
class Grant:
    provider: Provider
    client_id: str
    redirect_uri: str
    scope: str
    user_key: str
    code_challenge: str | None
    code_challenge_method: str | None


@dataclass(frozen=True)
class RecordedRequest:
    provider: Provider
    endpoint: str
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    client_auth: str | None = None  # "basic", "post" or None (token endpoint only)


@dataclass
class FakeOAuthProviders:
    google_client_id: str = "google-client-id"
    google_client_secret: str = "google-client-secret"
    github_client_id: str = "github-client-id"
    github_client_secret: str = "github-client-secret"
    google_users: dict[str, GoogleUser] = field(default_factory=dict)
    github_users: dict[str, GithubUser] = field(default_factory=dict)
    google_user: str | None = None
    github_user: str | None = None
    deny: str | None = None
    token_error: tuple[int, dict[str, Any]] | None = None
    userinfo_status: int | None = None
    emails_status: int | None = None
    google_expires_in: int | None = 3599
    github_expires_in: int | None = None
    refresh_tokens: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, tuple[Provider, str, str]] = field(default_factory=dict)

    # --- registry ------------------------------------------------------------------------------

    def add_google_user(
        self,
        id: str,
        email: str,
        *,
        name: str | None = None,
        picture: str | None = None,
        verified_email: bool = True,
    ) -> GoogleUser:
        user = GoogleUser(id, email, name, picture, verified_email)
        self.google_users[id] = user
        self.google_user = id
        return user

    def add_github_user(
        self,
        id: int,
        login: str,
        *,
        name: str | None = None,
        avatar_url: str | None = None,
        email: str | None = None,
        emails: list[dict[str, Any]] | None = None,
    ) -> GithubUser:
        user = GithubUser(id, login, name, avatar_url, email, list(emails or []))
        self.github_users[login] = user
        self.github_user = login
        return user

    def env(self, base_url: str) -> dict[str, str]:
        return {
            "GOOGLE_AUTHORIZE_URL": f"{base_url}/google/o/oauth2/v2/auth",
            "GOOGLE_TOKEN_URL": f"{base_url}/google/token",
            "GOOGLE_USERINFO_URL": f"{base_url}/google/oauth2/v2/userinfo",
            "GITHUB_AUTHORIZE_URL": f"{base_url}/github/login/oauth/authorize",
            "GITHUB_TOKEN_URL": f"{base_url}/github/login/oauth/access_token",
            "GITHUB_API_URL": f"{base_url}/github/api",
            "GOOGLE_CLIENT_ID": self.google_client_id,
            "GOOGLE_CLIENT_SECRET": self.google_client_secret,
            "GITHUB_CLIENT_ID": self.github_client_id,
            "GITHUB_CLIENT_SECRET": self.github_client_secret,
        }

    def recorded(self, provider: Provider, endpoint: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.provider == provider and r.endpoint == endpoint]

    # --- dispatch ------------------------------------------------------------------------------

    async def handle(self, request: FakeRequest) -> Reply:
        routes = {
            ("GET", "/google/o/oauth2/v2/auth"): ("google", "authorize"),
            ("POST", "/google/token"): ("google", "token"),
            ("GET", "/google/oauth2/v2/userinfo"): ("google", "userinfo"),
            ("GET", "/github/login/oauth/authorize"): ("github", "authorize"),
            ("POST", "/github/login/oauth/access_token"): ("github", "token"),
            ("GET", "/github/api/user"): ("github", "user"),
            ("GET", "/github/api/user/emails"): ("github", "emails"),
        }
        route = routes.get((request.method, request.path.rstrip("/") or "/"))
        if route is None:
            return Reply.json({"message": "Not Found"}, 404)
        provider, endpoint = route
        form = request.form() if request.method == "POST" else {}
        auth = _client_auth(request, form) if endpoint == "token" else None
        self.requests.append(
            RecordedRequest(
                provider,  # type: ignore[arg-type]
                endpoint,
                request.method,
                request.query,
                request.headers,
                form,
                None if auth is None else auth[0],
            )
        )
        if endpoint == "authorize":
            return self._authorize(provider, request.query)  # type: ignore[arg-type]
        if endpoint == "token":
            return self._token(provider, request, form, auth)  # type: ignore[arg-type]
        if endpoint == "userinfo":
            return self._userinfo(request)
        return self._github_api(endpoint, request)

    def _credentials(self, provider: Provider) -> tuple[str, str]:
        if provider == "google":
            return self.google_client_id, self.google_client_secret
        return self.github_client_id, self.github_client_secret

    # --- authorize -----------------------------------------------------------------------------

    def _authorize(self, provider: Provider, query: dict[str, str]) -> Reply:
        client_id, _ = self._credentials(provider)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != client_id:
            return Reply(400, b"Error 401: invalid_client. The OAuth client was not found.")
        if query.get("response_type") != "code" or not redirect_uri.startswith(("http:", "https:")):
            return Reply(400, b"Error 400: invalid_request")
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method", "plain" if challenge else None)
        if challenge is not None and method not in ("S256", "plain"):
            return Reply(400, b"Error 400: invalid_request. Invalid code_challenge_method.")
        state = query.get("state")
        if self.deny is not None:
            params = {"error": self.deny}
            if provider == "github":
                params["error_description"] = "The user has denied your application access."
            return Reply.redirect(_add_query(redirect_uri, params, state))
        if provider == "google":
            key = query.get("login_hint") or self.google_user
            known = key in self.google_users
        else:
            key = query.get("login") or self.github_user
            known = key in self.github_users
        if key is None or not known:
            return Reply(400, b"no such user is signed in at the fake provider")
        code = ("4/0A" if provider == "google" else "") + secrets.token_hex(10)
        self.grants[code] = Grant(
            provider, client_id, redirect_uri, query.get("scope", ""), key, challenge, method
        )
        params = {"code": code}
        if provider == "google":
            params["scope"] = query.get("scope", "")
        return Reply.redirect(_add_query(redirect_uri, params, state))

    # --- token ---------------------------------------------------------------------------------

    def _token(
        self,
        provider: Provider,
        request: FakeRequest,
        form: dict[str, str],
        auth: tuple[str, str, str] | None,
    ) -> Reply:
        wants_json = "application/json" in request.headers.get("accept", "")

        def error(status: int, code: str, description: str) -> Reply:
            if provider == "google":
                return Reply.json({"error": code, "error_description": description}, status)
            body = {"error": code, "error_description": description, "error_uri": GITHUB_ERROR_URI}
            if wants_json:
                return Reply.json(body)
            form_body = urlencode(body).encode()
            return Reply(200, form_body, [("content-type", "application/x-www-form-urlencoded")])

        if self.token_error is not None:
            status, body = self.token_error
            return Reply.json(body, status)
        client_id, client_secret = self._credentials(provider)
        if auth is None or auth[1:] != (client_id, client_secret):
            if provider == "google":
                return error(401, "invalid_client", "Unauthorized")
            return error(200, "incorrect_client_credentials", GITHUB_BAD_CLIENT)
        if provider == "google" and form.get("grant_type") != "authorization_code":
            return error(400, "unsupported_grant_type", "Invalid grant_type: ")
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.provider != provider or grant.client_id != client_id:
            if provider == "google":
                return error(400, "invalid_grant", "Bad Request")
            return error(200, "bad_verification_code", "The code passed is incorrect or expired.")
        if form.get("redirect_uri") != grant.redirect_uri:
            return error(400, "redirect_uri_mismatch", "Bad Request")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier")
            if verifier is None:
                return error(400, "invalid_grant", "Missing code verifier.")
            if grant.code_challenge_method == "S256":
                digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
                computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            else:
                computed = verifier
            if computed != grant.code_challenge:
                return error(400, "invalid_grant", "Invalid code verifier.")
        del self.grants[form["code"]]
        return self._issue(provider, grant, wants_json)

    def _issue(self, provider: Provider, grant: Grant, wants_json: bool) -> Reply:
        prefix = "ya29." if provider == "google" else "gho_"
        access_token = prefix + secrets.token_urlsafe(24)
        self.tokens[access_token] = (provider, grant.user_key, grant.scope)
        body: dict[str, Any] = {"access_token": access_token}
        expires_in = self.google_expires_in if provider == "google" else self.github_expires_in
        if provider == "google":
            body.update(token_type="Bearer", scope=grant.scope)
        else:
            body.update(token_type="bearer", scope=grant.scope.replace(" ", ","))
        if expires_in is not None:
            body["expires_in"] = expires_in
        if self.refresh_tokens:
            body["refresh_token"] = ("1//" if provider == "google" else "ghr_") + secrets.token_hex(
                16
            )
        if provider == "google" or wants_json:
            return Reply.json(body)
        form_body = urlencode({k: str(v) for k, v in body.items()}).encode()
        return Reply(200, form_body, [("content-type", "application/x-www-form-urlencoded")])

    # --- resources -----------------------------------------------------------------------------

    def _bearer(self, request: FakeRequest, provider: Provider) -> tuple[str, str] | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        found = self.tokens.get(token.strip())
        if found is None or found[0] != provider:
            return None
        return found[1], found[2]

    def _userinfo(self, request: FakeRequest) -> Reply:
        grant = self._bearer(request, "google")
        if grant is None:
            return Reply.json(
                {
                    "error": {
                        "code": 401,
                        "message": "Request had invalid authentication credentials.",
                        "status": "UNAUTHENTICATED",
                    }
                },
                401,
            )
        if self.userinfo_status is not None:
            return Reply.json({"error": {"code": self.userinfo_status}}, self.userinfo_status)
        return Reply.json(self.google_users[grant[0]].userinfo())

    def _github_api(self, endpoint: str, request: FakeRequest) -> Reply:
        if not request.headers.get("user-agent"):
            return Reply(403, GITHUB_NO_USER_AGENT)
        grant = self._bearer(request, "github")
        if grant is None:
            return Reply.json(
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
                401,
            )
        user = self.github_users[grant[0]]
        if endpoint == "user":
            if self.userinfo_status is not None:
                return Reply.json({"message": "Server Error"}, self.userinfo_status)
            return Reply.json(user.user())
        scopes = set(grant[1].replace(",", " ").split())
        if self.emails_status is not None or not scopes & {"user", "user:email"}:
            status = self.emails_status or 404
            return Reply.json({"message": "Not Found", "status": str(status)}, status)
        return Reply.json(user.emails)


def _client_auth(request: FakeRequest, form: dict[str, str]) -> tuple[str, str, str] | None:
    """(method, client_id, client_secret) from HTTP Basic or the form; None when absent or mixed."""
    basic = None
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        user, colon, password = decoded.partition(":")
        if not colon:
            return None
        basic = (unquote_plus(user), unquote_plus(password))
    posted = None
    if "client_id" in form and "client_secret" in form:
        posted = (form["client_id"], form["client_secret"])
    if basic is not None and posted is not None and basic != posted:
        return None
    if basic is not None:
        return ("basic", *basic)
    if posted is not None:
        return ("post", *posted)
    return None


def _add_query(url: str, params: dict[str, str], state: str | None) -> str:
    if state is not None:
        params = {**params, "state": state}
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


async def serve_fake_oauth_providers(
    fake: FakeOAuthProviders, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve both fake providers on 127.0.0.1 at a free port; `nursery.start` returns the base URL."""
    await serve_handler(fake.handle, task_status=task_status)
