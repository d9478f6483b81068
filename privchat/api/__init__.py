"""HTTP routes, one blueprint per route family. The static frontend fallback is registered last."""

from __future__ import annotations

from quart import Blueprint


def blueprints() -> list[Blueprint]:
    # admin_analytics, admin_models, admin_users, auth_near and auth_oauth add routes to the admin and auth
    # blueprints.
    from . import (  # noqa: F401
        admin,
        admin_analytics,
        admin_models,
        admin_users,
        attestation,
        auth,
        auth_near,
        auth_oauth,
        configs,
        conversations,
        files,
        frontend,
        health,
        models,
        openai_models,
        responses,
        users,
    )

    return [
        health.bp,
        auth.bp,
        users.bp,
        configs.bp,
        admin.bp,
        conversations.bp,
        files.bp,
        attestation.bp,
        responses.bp,
        models.bp,
        openai_models.bp,
        frontend.bp,  # last: it catches every path nothing else matched
    ]
