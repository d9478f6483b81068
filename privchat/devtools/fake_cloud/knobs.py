"""Scriptable behaviour of the fake upstream ("knobs").

Every field of :class:`Knobs` can be set three ways:

* in-process: ``fake.knobs.deltas = 50`` (or ``fake.configure(deltas=50)``);
* per request, by a header ``x-fake-<field with '-' for '_'>``, e.g. ``x-fake-deltas: 50``;
* for a fake running as its own process: ``POST /_fake/config`` with a JSON object of fields
  (``GET /_fake/config`` shows them, ``POST /_fake/reset`` restores defaults).

Header / JSON names (values in headers are plain text):

=============================  ==================================================================
``x-fake-deltas``              number of ``response.output_text.delta`` events (int, default 8)
``x-fake-text``                reply text to use instead of the echo model's reply
``x-fake-first-delay-ms``      time from the 200 headers to the first event
``x-fake-delay-ms``            delay before every event after the first
``x-fake-pace``                ``relative`` (default: each delay starts after the previous
                               write) | ``absolute`` (event i is due first-delay + i x delay
                               after the head, so a late wake-up does not push later events)
``x-fake-gaps``                extra silent gaps ``"<event index>:<ms>,..."`` (before that event)
``x-fake-write``               ``event`` (one event per write) | ``coalesce`` | ``split``
``x-fake-coalesce``            events per write in ``coalesce`` mode (default 3)
``x-fake-fail``                ``none`` | ``http_error`` | ``failed_only`` |
                               ``failed_after_partial`` | ``drop``
``x-fake-fail-status``         HTTP status for ``http_error``; ``status_code`` for ``response.failed``
``x-fake-fail-message``        error message used by the failure modes
``x-fake-fail-body``           raw body for ``http_error`` (sent as text/plain instead of envelope)
``x-fake-fail-after``          deltas sent before ``failed_after_partial``/``drop`` (default half)
``x-fake-compress``            ``1``/``0``: gzip/br for JSON bodies per Accept-Encoding (never SSE)
``x-fake-title``               ``auto`` (first turn of a conversation) | ``none`` | ``before`` |
                               ``after`` (late ``conversation.title.updated`` after completed)
``x-fake-title-delay-ms``      delay before a late title event
``x-fake-reasoning``           ``1``: emit a reasoning item before the message
``x-fake-citation``            ``1``: emit one ``url_citation`` annotation
``x-fake-signature-delay-ms``  time after completion before ``/v1/signature/{id}`` answers (404 before)
``x-fake-profile``             ``head`` (default) | ``jan-2026`` (drift: no compression, no
                               ``x-request-id``/``cache-control: no-store``, old failed shape)
=============================  ==================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

WRITE_MODES = ("event", "coalesce", "split")
FAIL_MODES = ("none", "http_error", "failed_only", "failed_after_partial", "drop")
TITLE_MODES = ("auto", "none", "before", "after")
PROFILES = ("head", "jan-2026")
PACES = ("relative", "absolute")
HEADER_PREFIX = "x-fake-"


class KnobError(ValueError):
    """A knob name or value could not be understood."""


@dataclass
class Knobs:
    deltas: int = 8
    text: str | None = None
    first_delay_ms: float = 0.0
    delay_ms: float = 0.0
    pace: str = "relative"
    gaps: dict[int, float] = field(default_factory=dict)
    write: str = "event"
    coalesce: int = 3
    fail: str = "none"
    fail_status: int | None = None
    fail_message: str | None = None
    fail_body: str | None = None
    fail_after: int | None = None
    compress: bool = True
    title: str = "auto"
    title_delay_ms: float = 0.0
    reasoning: bool = False
    citation: bool = False
    signature_delay_ms: float = 0.0
    profile: str = "head"

    def copy(self) -> Knobs:
        return dataclasses.replace(self, gaps=dict(self.gaps))

    def updated(self, values: Mapping[str, Any]) -> Knobs:
        """A copy with ``values`` (field name -> str or JSON value) applied; raises KnobError."""
        new = self.copy()
        kinds = {f.name: f.type for f in dataclasses.fields(self)}
        for name, raw in values.items():
            key = name.replace("-", "_")
            if key not in kinds:
                raise KnobError(f"unknown knob {name!r}")
            setattr(new, key, _coerce(key, str(kinds[key]), raw))
        new.validate()
        return new

    def validate(self) -> None:
        checks = [
            (self.write, WRITE_MODES, "write"),
            (self.fail, FAIL_MODES, "fail"),
            (self.title, TITLE_MODES, "title"),
            (self.profile, PROFILES, "profile"),
            (self.pace, PACES, "pace"),
        ]
        for value, allowed, name in checks:
            if value not in allowed:
                raise KnobError(f"{name} must be one of {allowed}")
        if self.deltas < 1 or self.coalesce < 1:
            raise KnobError("deltas and coalesce must be >= 1")

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["gaps"] = {str(k): v for k, v in self.gaps.items()}
        return data


def from_headers(base: Knobs, headers: Iterable[tuple[bytes, bytes]]) -> Knobs:
    values = {}
    for name, value in headers:
        lowered = name.decode("latin-1").lower()
        if lowered.startswith(HEADER_PREFIX):
            values[lowered[len(HEADER_PREFIX) :]] = value.decode("utf-8")
    return base.updated(values) if values else base.copy()


def _coerce(key: str, kind: str, raw: Any) -> Any:
    try:
        if key == "gaps":
            return _parse_gaps(raw)
        if raw is None:
            if "None" not in kind:
                raise KnobError(f"{key} cannot be null")
            return None
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise KnobError(f"bad value for {key}") from exc


def _parse_gaps(raw: Any) -> dict[int, float]:
    if isinstance(raw, Mapping):
        return {int(k): float(v) for k, v in raw.items()}
    gaps: dict[int, float] = {}
    for part in str(raw).split(","):
        if part.strip():
            index, _, millis = part.partition(":")
            gaps[int(index)] = float(millis)
    return gaps
