"""HTTP routes, one blueprint per route family. The static frontend fallback is registered last."""

from __future__ import annotations

from quart import Blueprint


def blueprints() -> list[Blueprint]:
    from . import admin, auth, conversations, files, frontend, health

    return [
        health.bp,
        auth.bp,
        admin.bp,
        conversations.bp,
        files.bp,
        frontend.bp,  # last: it catches every path nothing else matched
    ]
