"""Serve a :class:`FakeCloud` with hypercorn on trio."""

from __future__ import annotations

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .app import make_app
from .state import FakeCloud


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None  # never log request lines (paths may carry ids)
    config.errorlog = None
    config.include_server_header = False
    config.keep_alive_timeout = 75
    config.graceful_timeout = 0.5
    return config


async def serve_fake_cloud(
    fake: FakeCloud,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``fake`` until cancelled. With ``nursery.start`` returns ``http://HOST:PORT/v1``."""

    async def bound(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(make_app(fake), hypercorn_config(host, port), task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(bound)
        task_status.started(binds[0].rstrip("/") + "/v1")
