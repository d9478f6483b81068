"""Request and response bodies of the OpenAI-compatible routes, for the OpenAPI document.

These routes relay the upstream's bodies unchanged, so these models document the fields clients
use most and allow any other (the upstream validates); privchat's own routes validate with the
models next to their handlers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class InputMessage(_Open):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[dict[str, Any]]


class ResponseCreate(_Open):
    model: str = Field(examples=["privchat-dev/echo"])
    input: str | list[dict[str, Any]] = Field(examples=["Hello!"])
    conversation: str | None = Field(None, description="conv_... id of one of your conversations")
    previous_response_id: str | None = None
    instructions: str | None = None
    stream: bool = False
    store: bool | None = None


class Response(_Open):
    id: str
    object: Literal["response"] = "response"
    model: str
    status: str
    output: list[dict[str, Any]]


class ConversationCreate(_Open):
    metadata: dict[str, Any] | None = None
    items: list[InputMessage] | None = Field(None, max_length=20)


class ConversationUpdate(_Open):
    metadata: dict[str, Any]


class Conversation(_Open):
    id: str = Field(examples=["conv_0123456789abcdef0123456789abcdef"])
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, Any]


class ItemsCreate(_Open):
    items: list[InputMessage] = Field(min_length=1, max_length=20)


class ItemList(_Open):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str
    last_id: str
    has_more: bool


class FileUpload(BaseModel):
    file: bytes = Field(json_schema_extra={"format": "binary"})
    purpose: str = Field(examples=["user_data"])


class FileObject(_Open):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str


class FileList(_Open):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool


class Deleted(_Open):
    id: str
    object: str
    deleted: bool


class Model(BaseModel):
    id: str = Field(examples=["privchat-dev/echo"])
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Session(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`")
    expires_at: str


class NearSession(Session):
    session_id: str
    is_new_user: bool


class User(BaseModel):
    id: str
    email: str
    name: str | None
    avatar_url: str | None
    created_at: str
    updated_at: str


class LinkedAccount(BaseModel):
    provider: str
    linked_at: str


class Profile(BaseModel):
    user: User
    linked_accounts: list[LinkedAccount]


class Settings(BaseModel):
    notification: bool
    system_prompt: str | None = None
    web_search: bool
    appearance: Literal["Light", "Dark", "System"]


class UserSettings(BaseModel):
    user_id: str
    settings: Settings


class SystemConfigs(BaseModel):
    default_model: str | None = None


class StoredSystemConfigs(RootModel[SystemConfigs | None]):
    """The system settings, or null before an admin first set them."""
