"""The :class:`FakeCloud` object: configuration, knobs, recordings and stored data."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from .knobs import Knobs
from .signing import Signer
from .store import Store


@dataclass
class RecordedRequest:
    """One inbound request exactly as received."""

    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    time: float

    def header(self, name: str) -> bytes | None:
        wanted = name.lower().encode("latin-1")
        values = [v for k, v in self.headers if k.lower() == wanted]
        return values[-1] if values else None


@dataclass
class StreamRecord:
    """One ``/v1/responses`` stream as sent by the fake."""

    response_id: str
    request: RecordedRequest
    frames: list[bytes] = field(default_factory=list)  # whole SSE frames, in order
    chunks: list[bytes] = field(default_factory=list)  # exact writes as sent
    started_at: float = 0.0
    completed: bool = False  # body ended cleanly
    aborted: bool = False  # connection dropped by the fake on purpose
    failed: bool = False  # a response.failed event was sent
    disconnected: bool = False  # the client went away before the end
    disconnect_time: float | None = None
    disconnect_event: trio.Event = field(default_factory=trio.Event)
    done: trio.Event = field(default_factory=trio.Event)  # set when the handler finishes

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def finished(self) -> bool:
        return self.done.is_set()


class FakeCloud:
    """A fake NEAR AI Cloud. Mutable per test; serve it with :func:`serve_fake_cloud`."""

    def __init__(
        self,
        api_key: str = "sk-test",
        *,
        vpc_secret: bytes = b"privchat-fake-vpc-secret",
        knobs: Knobs | None = None,
        seed: bytes = b"privchat-fake-cloud",
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
    ) -> None:
        self.api_key = api_key
        self.api_keys: set[str] = {api_key}
        self.vpc_secret = vpc_secret
        self.knobs = knobs or Knobs()
        self.signer = Signer.from_seed(seed)
        self.clock = clock  # wall clock (unix seconds) for VPC login windows
        self.store = store or Store()
        self.requests: list[RecordedRequest] = []
        self.streams: list[StreamRecord] = []
        self.attestation_extra: dict[str, Any] = {}  # merged into gateway_attestation
        self.attestation_error: tuple[int, str] | None = None  # (status, message) -> 503-style
        self._stream_added = trio.Event()

    @property
    def script(self) -> Knobs:
        """Alias of :attr:`knobs`."""
        return self.knobs

    def configure(self, **values: Any) -> None:
        """Update knobs by field name, validating values (raises KnobError)."""
        self.knobs = self.knobs.updated(values)

    def reset_knobs(self) -> None:
        self.knobs = Knobs()

    def clear_recordings(self) -> None:
        self.requests.clear()
        self.streams.clear()

    def add_stream(self, record: StreamRecord) -> None:
        self.streams.append(record)
        self._stream_added.set()
        self._stream_added = trio.Event()

    async def wait_stream(self, index: int = 0) -> StreamRecord:
        """Wait until stream number ``index`` (0-based) has started, and return it."""
        while len(self.streams) <= index:
            await self._stream_added.wait()
        return self.streams[index]

    def stream_for(self, response_id: str) -> StreamRecord | None:
        return next((s for s in self.streams if s.response_id == response_id), None)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            r for r in self.requests if r.path == path and (method is None or r.method == method)
        ]
