"""The fake's model catalogue (spec §1.5). All models answer with the echo generator."""

from __future__ import annotations

from typing import Any

from .echo import ECHO_MODEL


def _cost(amount: int) -> dict[str, Any]:
    return {"amount": amount, "scale": 9, "currency": "USD"}


def _model(model_id: str, name: str, description: str, owner: str, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "verifiable": True,
        "contextLength": 131072,
        "modelDisplayName": name,
        "modelDescription": description,
        "ownedBy": owner,
        "providerType": "vllm",
        "attestationSupported": True,
        "architecture": {"inputModalities": ["text"], "outputModalities": ["text"]},
    }
    metadata.update(extra)
    return {
        "modelId": model_id,
        "inputCostPerToken": _cost(0),
        "outputCostPerToken": _cost(0),
        "costPerImage": _cost(0),
        "metadata": metadata,
    }


MODELS: list[dict[str, Any]] = [
    _model(
        ECHO_MODEL,
        "privchat dev echo",
        "Local development model, not an LLM: deterministically echoes your message.",
        "privchat",
        verifiable=False,
        attestationSupported=False,
        aliases=["echo"],
    ),
    _model(
        "zai-org/GLM-4.6",
        "GLM 4.6 (fake)",
        "Fake stand-in answering with the echo generator.",
        "zai-org",
    ),
    _model(
        "deepseek-ai/DeepSeek-V3.1",
        "DeepSeek V3.1 (fake)",
        "Fake stand-in answering with the echo generator.",
        "deepseek-ai",
    ),
]


def find_model(name: str) -> dict[str, Any] | None:
    for model in MODELS:
        if model["modelId"] == name or name in model["metadata"].get("aliases", []):
            return model
    return None
