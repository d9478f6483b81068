"""Logging with privacy rules, and Prometheus metrics.

Privacy: privchat logs IDs, statuses, sizes and timings only. Structured fields are passed as
`extra={...}`; any field whose name suggests content or a credential is dropped by the formatter,
so a careless call cannot leak it. Messages themselves must be constant strings.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .config import Config

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_SENSITIVE = (
    "authorization", "token", "secret", "password", "api_key", "apikey", "key", "cookie",
    "content", "prompt", "instructions", "input", "title", "filename", "email", "name", "code",
    "signature", "body", "state",
)  # fmt: skip
_LEVELS = {"trace": logging.DEBUG, "warn": logging.WARNING}


def _safe_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _RESERVED or key.startswith("_"):
            continue
        lowered = key.lower()
        if lowered.endswith("_id") or lowered in ("id", "status", "bytes", "size", "count"):
            fields[key] = value
        elif any(word in lowered for word in _SENSITIVE):
            continue
        else:
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, fields.message (+ fields), target."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"message": record.getMessage(), **_safe_fields(record)}
        if record.exc_info and record.exc_info[0] is not None:
            fields["error"] = record.exc_info[0].__name__
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "fields": fields,
            "target": record.name,
        }
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in _safe_fields(record).items())
        error = ""
        if record.exc_info and record.exc_info[0] is not None:
            error = f" error={record.exc_info[0].__name__}"
        return f"{stamp} {record.levelname:<5} {record.name}: {record.getMessage()} {extra}{error}"


class _Enqueue(logging.handlers.QueueHandler):
    """Hands each record as it is to the writer thread, which formats and writes it: a slow or
    blocked log sink (a full pipe to the container runtime) never stalls the event loop."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


_listener: logging.handlers.QueueListener | None = None


def setup_logging(config: Config, stream: Any = None) -> None:
    """Log to `stream` (stderr) from a writer thread, at the configured levels."""
    global _listener
    stop_logging()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else TextFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, handler)
    _listener.start()
    atexit.register(stop_logging)
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(_LEVELS.get(config.log_level, config.log_level.upper()))
    for name, level in config.log_module_levels:
        logging.getLogger(name).setLevel(_LEVELS.get(level, level.upper()))
    # Library loggers that would otherwise print request lines or bodies.
    for noisy in ("hpack", "httpx2", "httpcore", "httpcore2", "asyncio", "trio_asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def stop_logging() -> None:
    """Write out what is queued and stop the writer thread (at exit; idempotent)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


class Metrics:
    """Prometheus instruments; one registry per app so tests can run several apps."""

    def __init__(self, environment: str) -> None:
        self.environment = environment
        self.registry = CollectorRegistry()
        labels = ("method", "endpoint", "status_code", "environment")
        self.http_requests = Counter(
            "chat_api_http_requests", "Total HTTP requests", labels, registry=self.registry
        )
        self.http_duration = Histogram(
            "chat_api_http_duration_seconds",
            "HTTP request processing time, to the last byte of the body",
            labels,
            registry=self.registry,
        )
        self.events = Counter(
            "chat_api_events", "Business events", ("event", "auth_method"), registry=self.registry
        )

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        labels = (method, normalize_endpoint(path), str(status), self.environment)
        self.http_requests.labels(*labels).inc()
        self.http_duration.labels(*labels).observe(seconds)

    def event(self, name: str, auth_method: str = "") -> None:
        self.events.labels(name, auth_method).inc()

    def track_session_cache(self, cache: Any) -> None:
        """Export the session cache's own counters (read at scrape time, nothing per request)."""
        self.registry.register(_SessionCacheCollector(cache))


class _SessionCacheCollector:
    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def collect(self) -> Any:
        lookups = CounterMetricFamily(
            "chat_api_session_cache_lookups", "Session lookups while caching", labels=["result"]
        )
        lookups.add_metric(["hit"], self.cache.hits)
        lookups.add_metric(["miss"], self.cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            "chat_api_session_cache_entries", "Sessions held in memory", value=len(self.cache)
        )


def _is_uuid(segment: str) -> bool:
    if len(segment) != 36:
        return False
    parts = segment.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        return False
    return all(c in "0123456789abcdefABCDEF" for p in parts for c in p)


def normalize_endpoint(path: str) -> str:
    """Replace id-like path segments by `{id}` so metrics stay low-cardinality."""
    out = []
    for segment in path.split("/"):
        if _is_uuid(segment) or segment.startswith(("conv_", "chatcmpl-", "resp_", "file-")):
            out.append("{id}")
        else:
            out.append(segment)
    return "/".join(out)


class MetricsMiddleware:
    """ASGI wrapper that records each HTTP request when its last body byte is sent (D15).

    It only observes `send`; `receive` passes through untouched, so client disconnects still
    reach the app (design pitfall 6).
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self.metrics.observe_request(
                    scope["method"], scope["path"], status, time.perf_counter() - started
                )

        async def observed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record()

        try:
            await self.app(scope, receive, observed_send)
        finally:
            record()  # cancelled or failed mid-body: still counted, with the time it ran
