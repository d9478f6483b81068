"""OpenAPI document and docs UI."""

from __future__ import annotations

import httpx2


async def test_openapi_lists_the_routes(client: httpx2.AsyncClient) -> None:
    response = await client.get("/api-docs/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "privchat"
    for path in ("/health", "/v1/auth/mock-login"):
        assert path in document["paths"], path
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
