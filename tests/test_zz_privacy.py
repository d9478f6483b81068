"""Privacy: no token, prompt, key or code ever reaches the logs (design.md, platform.md §5).

Runs last (file name) so the scan covers the log output of the whole test run, which conftest
writes to one file at DEBUG level, library loggers included.
"""

from __future__ import annotations

import json

import httpx2

from .conftest import LOG_FILE, auth, login

PLANTED_TOKEN = "sess_" + "5ec2e7" * 5 + "ab"
PLANTED_PROMPT = "PLANTED-PROMPT-do-not-log-4b1d"
PLANTED_CODE = "PLANTED-OAUTH-CODE-93c1"


async def test_planted_secrets_never_reach_the_logs(client: httpx2.AsyncClient) -> None:
    token = await login(client, "privacy-probe@example.com")
    body = {"model": "m", "input": PLANTED_PROMPT, "instructions": PLANTED_PROMPT, "stream": True}
    for method, path in (
        ("POST", "/v1/responses"),
        ("POST", "/v1/conversations"),
        ("PATCH", "/v1/users/me/settings"),
        ("POST", "/v1/admin/vpc/revoke"),
        ("GET", f"/v1/auth/callback?code={PLANTED_CODE}&state={PLANTED_CODE}"),
        ("POST", "/v1/auth/near"),
        ("GET", f"/v1/unknown?token={PLANTED_TOKEN}"),
    ):
        await client.request(method, path, json=body, headers=auth(PLANTED_TOKEN))
        await client.request(
            method, path, json={"system_prompt": PLANTED_PROMPT}, headers=auth(token)
        )
    await client.get(
        "/health", headers={"Authorization": f"Basic {PLANTED_TOKEN}", "Cookie": PLANTED_TOKEN}
    )

    for handler in __import__("logging").getLogger().handlers:
        handler.flush()
    text = LOG_FILE.read_text()
    assert text, "the run produced no logs at all: the scan would prove nothing"
    for line in text.splitlines():
        json.loads(line)  # every record is one JSON object
    for secret in (PLANTED_TOKEN, PLANTED_PROMPT, PLANTED_CODE, token, "privacy-probe@example.com"):
        assert secret not in text, f"{secret[:12]}... leaked into the logs"
