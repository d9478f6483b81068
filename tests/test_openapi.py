"""The OpenAPI document (from the route definitions) and the docs UI, served without internet."""

from __future__ import annotations

import re

import httpx2
from openapi_spec_validator import validate

from privchat.runtime import Running

DEVIATION_ID = re.compile(r"\b[A-Z]\d{1,2}\b")
# quart-schema's own routes: the document and the page that shows it.
UNDOCUMENTED = {"openapi", "swagger_ui"}


async def _document(client: httpx2.AsyncClient) -> dict:  # type: ignore[type-arg]
    response = await client.get("/api-docs/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_document_is_valid_and_lists_every_route(
    client: httpx2.AsyncClient, server: Running
) -> None:
    document = await _document(client)
    validate(document)  # OpenAPI 3.1 schema, unique operation ids, resolvable $refs
    assert document["info"]["title"] == "privchat"
    app = server.services  # the app is built from these services; its routes come from api/
    from privchat.app import create_app

    rules = create_app(app).url_map.iter_rules()
    for rule in rules:
        if rule.endpoint in UNDOCUMENTED:
            continue
        path = re.sub(r"<(?:[^:>]*:)?([^>]+)>", r"{\1}", rule.rule)
        assert path in document["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], (method, path)


async def test_every_operation_is_described_for_users(client: httpx2.AsyncClient) -> None:
    document = await _document(client)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "session token",
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            summary = operation.get("summary", "")
            assert summary and not DEVIATION_ID.search(summary), where
            assert not DEVIATION_ID.search(operation.get("description", "")), where
            assert operation.get("tags"), where
            assert any(code.startswith("2") for code in operation["responses"]), where
            error = operation["responses"]["500"]["content"]["application/json"]["schema"]
            assert {"$ref": "#/components/schemas/ApiErrorBody"} in error["oneOf"], where
            guarded = path.startswith(("/v1/conversations", "/v1/files", "/v1/admin", "/v1/users"))
            if guarded or path in ("/v1/responses", "/v1/models"):
                assert operation["security"] == [{"bearer": []}], where
                assert "401" in operation["responses"], where
    assert document["paths"]["/health"]["get"]["security"] == []
    assert document["paths"]["/v1/auth/mock-login"]["post"]["security"] == []


async def test_request_and_response_bodies_are_documented(client: httpx2.AsyncClient) -> None:
    document = await _document(client)
    paths, schemas = document["paths"], document["components"]["schemas"]

    def request_schema(method: str, path: str, kind: str = "application/json") -> dict:  # type: ignore[type-arg]
        ref = paths[path][method]["requestBody"]["content"][kind]["schema"]
        return schemas[ref["$ref"].rsplit("/", 1)[1]] if "$ref" in ref else ref

    assert {"model", "input"} <= set(request_schema("post", "/v1/responses")["required"])
    assert "items" in request_schema("post", "/v1/conversations")["properties"]
    assert "metadata" in request_schema("post", "/v1/conversations/{conversation_id}")["required"]
    assert request_schema("post", "/v1/files", "multipart/form-data")["required"] == [
        "file",
        "purpose",
    ]
    assert "email" in request_schema("post", "/v1/auth/mock-login")["required"]
    for method, path in (
        ("patch", "/v1/users/me/settings"),
        ("post", "/v1/users/me/settings"),
        ("patch", "/v1/admin/models"),
        ("patch", "/v1/admin/configs"),
        ("post", "/v1/auth/logout"),
        ("post", "/v1/auth/near"),
        ("post", "/v1/conversations/{conversation_id}/items"),
    ):
        assert "requestBody" in paths[path][method], (method, path)
    listed = paths["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["title"] == "ModelList"
    assert listed["schema"]["properties"]["data"]["items"]["$ref"].endswith("/Model")


async def test_docs_page_loads_only_local_assets(client: httpx2.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert referenced, page.text
    assert not re.search(r"https?://", page.text), "the page must not load anything remote"
    for url in referenced:
        asset = await client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
        kind = asset.headers["content-type"]
        assert kind.startswith("text/css" if url.endswith(".css") else "text/javascript"), url
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content
    assert (await client.get("/docs/assets/../../pyproject.toml")).status_code == 404
    assert (await client.get("/docs/assets/index.html")).status_code == 404


async def test_documented_response_models_match_real_answers(client: httpx2.AsyncClient) -> None:
    from privchat.api import schemas
    from tests.conftest import auth

    schemas.Health.model_validate((await client.get("/health")).json())
    signed_in = await client.post("/v1/auth/mock-login", json={"email": "docs@example.com"})
    schemas.Session.model_validate(signed_in.json())
    h = auth(signed_in.json()["token"])
    schemas.Profile.model_validate((await client.get("/v1/users/me", headers=h)).json())
    settings = await client.get("/v1/users/me/settings", headers=h)
    schemas.UserSettings.model_validate(settings.json())
    configs = await client.get("/v1/configs", headers=h)
    schemas.StoredSystemConfigs.model_validate(configs.json())
    document = await _document(client)
    health = document["paths"]["/health"]["get"]["responses"]["200"]["content"]
    assert health["application/json"]["schema"]["title"] == "Health"
