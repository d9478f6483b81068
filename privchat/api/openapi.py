"""The OpenAPI document and the docs UI, both from the route definitions.

quart-schema builds the document from the registered routes: the summary is the handler's
docstring, request and response bodies come from `document_request`/`document_response` on the
handler. This module adds what is the same for many routes: the tag of each blueprint, the bearer
security of the routes behind a session or admin guard (`guards.GUARD_ATTRIBUTE`), and the error
bodies every route can answer. The Swagger UI's files are served from the `swagger-ui-bundle-v2`
package at `/docs/assets/`, so `/docs` works without internet.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, Quart, Response
from quart_schema import HttpSecurityScheme, Info, QuartSchema, Tag
from quart_schema.openapi import OpenAPIProvider
from swagger_ui_bundle import swagger_ui_path
from werkzeug.routing import Rule

from .. import __version__
from ..auth.guards import GUARD_ATTRIBUTE

OPENAPI_PATH = "/api-docs/openapi.json"
DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

# Blueprint name -> tag shown in the docs.
TAGS: dict[str, Tag] = {
    "health": Tag(name="service", description="Health, metrics and these docs."),
    "docs_assets": Tag(name="service", description=""),
    "auth": Tag(name="auth", description="Sign in (Google, GitHub, NEAR) and sessions."),
    "users": Tag(name="users", description="The signed-in user and their settings."),
    "configs": Tag(name="configs", description="System settings visible to users."),
    "admin": Tag(name="admin", description="Administration (admin e-mail domains only)."),
    "conversations": Tag(name="conversations", description="OpenAI Conversations API."),
    "files": Tag(name="files", description="OpenAI Files API."),
    "responses": Tag(name="responses", description="OpenAI Responses API (streaming)."),
    "models": Tag(name="models", description="The models you may use, and response signatures."),
    "openai_models": Tag(name="models", description=""),
    "attestation": Tag(name="attestation", description="TEE attestation reports."),
    "frontend": Tag(name="frontend", description="The web frontend's files."),
}


class ApiErrorBody(BaseModel):
    """The error body of privchat's own routes."""

    code: str = Field(examples=["unauthorized"])
    message: str = Field(examples=["Invalid or expired session"])
    details: str | None = None


class ProxyErrorBody(BaseModel):
    """The error body of the routes that relay the upstream (Conversations, Files, Responses)."""

    error: Any = Field(examples=["Conversation not found"])


_ERRORS = {
    "400": "Invalid request",
    "401": "Missing, invalid or expired session token",
    "403": "Not allowed (admin only, banned, or private model)",
    "404": "Not found",
    "413": "Request body too large",
    "429": "Rate limited: retry after `Retry-After` seconds",
    "500": "Server error",
    "502": "The upstream could not be reached",
}


def _error_response(description: str) -> dict[str, Any]:
    schemas = [
        {"$ref": "#/components/schemas/ApiErrorBody"},
        {"$ref": "#/components/schemas/ProxyErrorBody"},
    ]
    return {
        "description": description,
        "content": {"application/json": {"schema": {"oneOf": schemas}}},
    }


class PrivchatOpenAPI(OpenAPIProvider):
    """quart-schema's provider plus tags, security and error responses per operation."""

    def operation_id(self, method: str, path: str, func: Any) -> str:
        """`get_v1_models_model_id`: unique per method and path, also for shared handlers."""
        words = re.findall(r"[a-z0-9]+", path.lower())
        return "_".join([method.lower(), *words]) if words else f"{method.lower()}_root"

    def build_paths(self, rule: Rule) -> tuple[dict, dict]:  # type: ignore[type-arg]
        paths, components = super().build_paths(rule)
        func = self._app.view_functions[rule.endpoint]
        blueprint = rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else ""
        guard = "admin" if blueprint == "admin" else getattr(func, GUARD_ATTRIBUTE, None)
        for operations in paths.values():
            for method, operation in list(operations.items()):
                operation = operations[method] = {**operation}
                responses = {str(code): value for code, value in operation["responses"].items()}
                operation["responses"] = responses
                tag = TAGS.get(blueprint)
                if tag is not None and not operation.get("tags"):
                    operation["tags"] = [tag.name]
                operation["security"] = [{"bearer": []}] if guard else []
                if not any(
                    str(code).startswith("2") or str(code).startswith("3") for code in responses
                ):
                    responses["200"] = {"description": "Success"}
                wanted = ["400", "404", "500"]
                if guard:
                    wanted += ["401", "403"]
                if rule.rule.startswith(("/v1/conversations", "/v1/files", "/v1/responses")):
                    wanted.append("502")
                if method in ("post", "put", "patch"):
                    wanted.append("413")
                if rule.rule == "/v1/responses":
                    wanted.append("429")
                for code in sorted(set(wanted)):
                    responses.setdefault(code, _error_response(_ERRORS[code]))
        components["ApiErrorBody"] = ApiErrorBody.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["ProxyErrorBody"] = ProxyErrorBody.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        return paths, components


assets = Blueprint("docs_assets", __name__)


@assets.get(f"{ASSETS_PATH}/<name>")
async def docs_asset(name: str) -> Response:
    """A file of the API documentation page."""
    if name not in ASSETS:
        return Response("Not found", status=404, content_type="text/plain; charset=utf-8")
    data = (swagger_ui_path / name).read_bytes()
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(data, content_type=kind, headers={"Cache-Control": "public, max-age=86400"})


def install(app: Quart) -> None:
    """The document at `OPENAPI_PATH`, the Swagger UI at `DOCS_PATH`, its files from the package."""
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = f"{ASSETS_PATH}/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = f"{ASSETS_PATH}/swagger-ui.css"
    QuartSchema(
        app,
        info=Info(
            title="privchat",
            version=__version__,
            description="Private AI chat backend: an OpenAI-compatible API (Responses, "
            "Conversations, Files, Models) in front of NEAR AI Cloud, with sign-in and TEE "
            "attestation. Authorize with the session token from a sign-in (in `privchat dev`: "
            "`POST /v1/auth/mock-login`).",
        ),
        openapi_path=OPENAPI_PATH,
        swagger_ui_path=DOCS_PATH,
        redoc_ui_path=None,
        scalar_ui_path=None,
        convert_casing=False,
        openapi_provider_class=PrivchatOpenAPI,
        security_schemes={
            "bearer": HttpSecurityScheme(scheme="bearer", bearer_format="session token")
        },
        tags=list({tag.name: tag for tag in TAGS.values() if tag.description}.values()),
    )
    app.register_blueprint(assets)
