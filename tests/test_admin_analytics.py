"""Admin analytics (api.md §2.10.8, §2.10.9) over real activity rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx2

from privchat.runtime import Running

from .conftest import auth, login


async def _seed(server: Running, email: str, rows: list[tuple[str, str | None, datetime]]) -> None:
    db = server.services.db
    user_id = await db.fetchval("SELECT id FROM users WHERE email = $1", email)
    await db.executemany(
        "INSERT INTO user_activity_log (user_id, activity_type, auth_method, created_at)"
        " VALUES ($1, $2, $3, $4)",
        [(user_id, kind, method, at) for kind, method, at in rows],
    )


async def test_summary_and_top_users(client: httpx2.AsyncClient, server: Running) -> None:
    admin = await login(client, "analyst@admin.org")
    a, b = "ana-a@example.com", "ana-b@example.com"
    await login(client, a)
    await login(client, b)
    start = datetime(2031, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=1)
    inside = start + timedelta(hours=1)
    await _seed(
        server,
        a,
        [("login", "google", inside), ("response", None, inside), ("response", None, inside)],
    )
    await _seed(
        server, b, [("signup", "near", inside), ("login", "google", end)]
    )  # end is excluded
    params = {"start": start.isoformat(), "end": end.isoformat()}

    response = await client.get("/v1/admin/analytics", params=params, headers=auth(admin))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["period_start"] == "2031-01-01T00:00:00Z"
        and body["period_end"] == "2031-01-02T00:00:00Z"
    )
    metrics = body["user_metrics"]
    assert (
        metrics["active_users"] == 2
        and metrics["total_logins"] == 1
        and metrics["total_signups"] == 1
    )
    assert metrics["new_users"] == 0 and metrics["total_users"] >= 3
    assert body["activity_metrics"] == {
        "total_responses": 2,
        "total_conversations": 0,
        "total_file_uploads": 0,
    }
    assert body["by_auth_method"] == [
        {"auth_method": "google", "user_count": 1, "login_count": 1, "signup_count": 0},
        {"auth_method": "near", "user_count": 1, "login_count": 0, "signup_count": 1},
    ]

    top = await client.get(
        "/v1/admin/analytics/top-users", params={**params, "limit": 1}, headers=auth(admin)
    )
    assert top.status_code == 200
    assert [(u["email"], u["activity_count"]) for u in top.json()["users"]] == [(a, 3)]
    assert top.json()["users"][0]["last_active"] == "2031-01-01T01:00:00Z"


async def test_bad_windows_and_limits(client: httpx2.AsyncClient) -> None:
    admin = await login(client, "analyst2@admin.org")
    ok = {"start": "2031-01-01T00:00:00Z", "end": "2031-01-02T00:00:00Z"}
    cases = [
        ("/v1/admin/analytics", {"end": ok["end"]}, 400, "Failed to deserialize query string"),
        (
            "/v1/admin/analytics",
            {**ok, "start": "yesterday"},
            400,
            "Failed to deserialize query string",
        ),
        (
            "/v1/admin/analytics",
            {**ok, "start": "2031-01-01T00:00:00"},
            400,
            "Failed to deserialize query string",
        ),
        (
            "/v1/admin/analytics",
            {"start": ok["end"], "end": ok["start"]},
            400,
            "start date must be before end date",
        ),
        (
            "/v1/admin/analytics/top-users",
            {**ok, "limit": 0},
            400,
            "limit must be between 1 and 100",
        ),
        (
            "/v1/admin/analytics/top-users",
            {**ok, "limit": 101},
            400,
            "limit must be between 1 and 100",
        ),
        (
            "/v1/admin/analytics/top-users",
            {**ok, "limit": "x"},
            400,
            "Failed to deserialize query string",
        ),
    ]
    for path, params, status, text in cases:
        response = await client.get(path, params=params, headers=auth(admin))
        assert response.status_code == status, (params, response.text)
        assert text in response.text
    user = await login(client, "nosy@no-admin.org")
    assert (
        await client.get("/v1/admin/analytics", params=ok, headers=auth(user))
    ).status_code == 403


async def test_absurd_bounds_and_repeated_parameters_are_400(client: httpx2.AsyncClient) -> None:
    """Issue 14, finding 11: bounds outside 1970..9999 (which near year 1 or 9999 also overflow
    Python's datetime once the offset is applied) and repeated parameters are 400, not 200/500."""
    admin = await login(client, "bounds@admin.org")
    ok = "2030-01-01T00:00:00Z"
    cases = [
        ({"start": "0001-01-01T00:00:00Z", "end": ok}, "start"),
        ({"start": "0001-01-01T00:00:00+05:00", "end": ok}, "start"),
        ({"start": "1969-12-31T23:59:59Z", "end": ok}, "start"),
        ({"start": ok, "end": "9999-12-31T23:59:59-05:00"}, "end"),
    ]
    for path in ("/v1/admin/analytics", "/v1/admin/analytics/top-users"):
        for params, name in cases:
            response = await client.get(path, params=params, headers=auth(admin))
            assert response.status_code == 400, (path, params, response.text)
            assert response.json() == {
                "code": "bad_request",
                "message": f"{name} must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
            }
        query = "start=2030-01-01T00:00:00Z&start=2020-01-01T00:00:00Z&end=2031-01-01T00:00:00Z"
        response = await client.get(f"{path}?{query}", headers=auth(admin))
        assert response.status_code == 400
        assert response.text == "Failed to deserialize query string: duplicate field `start`"
        edges = {"start": "1970-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}
        response = await client.get(path, params=edges, headers=auth(admin))
        assert response.status_code == 200, response.text
