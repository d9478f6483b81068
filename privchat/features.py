"""The long-lived services each feature owns, opened once per process next to the DB pool.

Each feature adds itself here: an async context manager that receives the `Services` and the
supervising nursery, registers what its handlers need as typed members of `Services`, and closes it on exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from .services.registry import Services


@asynccontextmanager
async def open_features(svc: Services, nursery: trio.Nursery) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for opener in _openers():
            await stack.enter_async_context(opener(svc, nursery))
        yield


def _openers() -> list:  # type: ignore[type-arg]
    from .api.responses import open_responses
    from .attestation.service import open_attestation
    from .services.balance import open_balance_gate
    from .upstream.client import open_upstream
    from .upstream.vpc import open_vpc

    # open_vpc registers the key source that open_upstream uses.
    return [open_vpc, open_upstream, open_responses, open_balance_gate, open_attestation]
