"""Play a scripted SSE stream over ASGI: delays, write patterns, drops, disconnect detection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .http import Headers
from .routes_responses import StreamJob
from .sse import split_frame

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
SPLIT_PAUSE = 0.001  # between the pieces of a split event, so they leave as separate writes


async def run_stream(job: StreamJob, headers: Headers, send: Send, receive: Receive) -> None:
    """Send the 200 + stream; return normally (clean end) or without finishing (abort)."""
    record = job.record
    record.started_at = trio.current_time()
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_disconnect, job, receive, nursery.cancel_scope)
            await _play(job, send)
            nursery.cancel_scope.cancel()
        if record.disconnected:
            return
        if job.drop_at is not None:
            record.aborted = True
            return  # ASGI app ends without finishing the body: the server drops the connection
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        record.completed = True
    finally:
        if record.disconnected and not job.committed:
            job.on_disconnected()
        record.done.set()


async def _watch_disconnect(job: StreamJob, receive: Receive, scope: trio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            record = job.record
            record.disconnected = True
            record.disconnect_time = trio.current_time()
            record.disconnect_event.set()
            scope.cancel()
            return


async def _write(job: StreamJob, send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})
    job.record.chunks.append(chunk)


def _slots(job: StreamJob) -> list[tuple[list[int], list[bytes]]]:
    """(frame indexes, writes) per scheduling slot, honouring write pattern and drop point."""
    frames = job.frames
    if job.drop_at is not None:
        frames = frames[: job.drop_at + 1]
    knobs = job.knobs
    slots: list[tuple[list[int], list[bytes]]] = []
    if knobs.write == "coalesce":
        for start in range(0, len(frames), knobs.coalesce):
            indexes = list(range(start, min(start + knobs.coalesce, len(frames))))
            slots.append((indexes, [b"".join(frames[i] for i in indexes)]))
    elif knobs.write == "split":
        slots = [([i], split_frame(f)) for i, f in enumerate(frames)]
    else:
        slots = [([i], [f]) for i, f in enumerate(frames)]
    if job.drop_at is not None:  # cut the last frame in half
        indexes, writes = slots[-1]
        joined = b"".join(writes)
        cut = len(joined) - len(frames[-1]) // 2
        slots[-1] = (indexes, [joined[:cut]])
    return slots


async def _play(job: StreamJob, send: Send) -> None:
    knobs = job.knobs
    sent = 0
    due = trio.current_time()
    for number, (indexes, writes) in enumerate(_slots(job)):
        delay = knobs.first_delay_ms if number == 0 else knobs.delay_ms
        delay += sum(knobs.gaps.get(i, 0.0) for i in indexes)
        due += delay / 1000
        if knobs.pace == "absolute":
            await trio.sleep_until(due)
        elif delay > 0:
            await trio.sleep(delay / 1000)
        for position, chunk in enumerate(writes):
            if position:
                await trio.sleep(SPLIT_PAUSE)
            await _write(job, send, chunk)
        for i in indexes:
            if i < len(job.frames) and (job.drop_at is None or i < job.drop_at):
                job.record.frames.append(job.frames[i])
        sent = indexes[-1]
        if job.completed_index is not None and sent >= job.completed_index and job.drop_at is None:
            job.on_completed(b"".join(job.frames[: job.completed_index + 1]))
            job.committed = True
    if job.late and job.drop_at is None:
        await trio.sleep(knobs.title_delay_ms / 1000)
        for late in job.late:
            await _write(job, send, late)
            job.record.frames.append(late)
