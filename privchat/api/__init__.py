"""HTTP routes, one blueprint per route family. The static frontend fallback is registered last."""

from __future__ import annotations

from quart import Blueprint


def blueprints() -> list[Blueprint]:
    # admin_models adds routes to the admin blueprint.
    from . import (  # noqa: F401
        admin,
        admin_models,
        attestation,
        auth,
        conversations,
        files,
        frontend,
        health,
        models,
        responses,
    )

    return [
        health.bp,
        auth.bp,
        admin.bp,
        conversations.bp,
        files.bp,
        attestation.bp,
        responses.bp,
        models.bp,
        frontend.bp,  # last: it catches every path nothing else matched
    ]
