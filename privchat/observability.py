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
import os
import queue
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, MapAdapter, RequestRedirect

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
    """One JSON object per line: timestamp, level, fields.message (+ fields), target. JSON
    escapes every control character, so request text cannot break the line."""

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


def escape(text: str) -> str:
    """`text` on one line: control characters, line breaks and lone surrogates as Python escapes
    (`\\n`, `\\x1b`, `\\x00`, `\\ud800`), so request text cannot forge or garble log lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class TextFormatter(logging.Formatter):
    """One line per record; request text in it is escaped (`escape`)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in _safe_fields(record).items())
        error = ""
        if record.exc_info and record.exc_info[0] is not None:
            error = f" error={record.exc_info[0].__name__}"
        line = f"{record.name}: {record.getMessage()} {extra}{error}"
        return f"{stamp} {record.levelname:<5} {escape(line)}"


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
        # Set at scrape time (`sample_runtime`), to count leaks in soak runs.
        self.tasks = Gauge("chat_api_trio_tasks", "Living Trio tasks", registry=self.registry)
        self.db_connections = Gauge(
            "chat_api_db_pool_connections",
            "Database pool connections",
            ("state",),
            registry=self.registry,
        )
        self.open_fds = Gauge(
            "chat_api_open_fds", "Open file descriptors of the process", registry=self.registry
        )

    def sample_runtime(self, tasks: int, db_size: int, db_idle: int) -> None:
        self.tasks.set(tasks)
        self.db_connections.labels("open").set(db_size)
        self.db_connections.labels("idle").set(db_idle)
        try:
            self.open_fds.set(len(os.listdir("/proc/self/fd")))
        except OSError:  # not Linux
            pass

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Record one request; `endpoint` is already a bounded label (`RouteLabels`)."""
        method = method if method in _METHODS else "OTHER"
        labels = (method, endpoint, str(status), self.environment)
        self.http_requests.labels(*labels).inc()
        self.http_duration.labels(*labels).observe(seconds)

    def event(self, name: str, auth_method: str = "") -> None:
        self.events.labels(name, auth_method).inc()

    def track_session_cache(self, cache: Any) -> None:
        """Export the session cache's own counters (read at scrape time, nothing per request)."""
        self.registry.register(_SessionCacheCollector(cache))

    def track_activity(self, writer: Any) -> None:
        """Export the activity writer's counters (read at scrape time)."""
        self.registry.register(_ActivityCollector(writer))


class _ActivityCollector:
    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def collect(self) -> Any:
        rows = CounterMetricFamily(
            "chat_api_activity_rows",
            "Activity rows written, and dropped (queue full, retry queue full, rejected)",
            labels=["outcome"],
        )
        rows.add_metric(["written"], self.writer.written)
        rows.add_metric(["dropped"], self.writer.dropped)
        yield rows
        yield GaugeMetricFamily(
            "chat_api_activity_rows_held",
            "Activity rows waiting for the database to come back",
            value=self.writer.held,
        )


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


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _template(rule: str) -> str:
    """`/v1/conversations/<conversation_id>` -> `/v1/conversations/{id}` (the reference's label
    for id segments); the frontend's catch-all `<path:path>` becomes `{path}`."""
    return _VARIABLE.sub(lambda m: "{path}" if m.group(1) == "path" else "{id}", rule)


class RouteLabels:
    """The `endpoint` label of a request: the template of the route it matches, or `unmatched`.

    The label set is the app's route table plus one value, whatever paths clients send.
    """

    def __init__(self, url_map: Map) -> None:
        self.url_map = url_map
        self._adapter: MapAdapter | None = None
        self._templates: dict[str, str] = {}

    def __call__(self, method: str, path: str) -> str:
        if self._adapter is None:
            self._adapter = self.url_map.bind("privchat")
        try:
            rule, _ = self._adapter.match(path, method, return_rule=True)
        except (HTTPException, RequestRedirect):  # 404, 405, a slash redirect
            return UNMATCHED
        text = str(rule.rule)
        template = self._templates.get(text)
        if template is None:
            template = self._templates[text] = _template(text)
        return template


class MetricsMiddleware:
    """ASGI wrapper that records each HTTP request when its last body byte is sent (D15).

    It only observes `send`; `receive` passes through untouched, so client disconnects still
    reach the app (design pitfall 6).
    """

    def __init__(self, app: Any, metrics: Metrics, routes: RouteLabels) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

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
                seconds = time.perf_counter() - started
                endpoint = self.routes(scope["method"], scope["path"])
                self.metrics.observe_request(scope["method"], endpoint, status, seconds)

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
