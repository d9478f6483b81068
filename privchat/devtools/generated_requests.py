"""Generated requests against a running privchat: schemathesis over privchat's own OpenAPI
document, every operation, valid and invalid inputs, as several identities in turn.

A finding is a 5xx, a response slower than `slow_seconds`, or no response within
`hang_seconds`. The run is deterministic for a given seed and document (hypothesis draws from it);
`tests/test_generated_requests.py` runs it in CI with a fixed seed, `scripts/generated_requests.py`
runs a larger one with a random seed. Needs the `test` extra (schemathesis).

Synchronous (schemathesis sends with `requests`): run it in a thread beside the server's loop.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, openapi

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class Report:
    seed: int
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    slowest: float = 0.0
    seconds: float = 0.0

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"seed {self.seed}: {self.requests} requests over {len(self.per_operation)} operations"
            f" in {self.seconds:.0f} s; slowest {self.slowest:.2f} s;"
            f" {len(self.findings)} findings; statuses {{{statuses}}}"
        )


def run(
    base_url: str,
    identities: Mapping[str, Mapping[str, str]],
    *,
    seed_value: int,
    total: int,
    slow_seconds: float = 5.0,
    hang_seconds: float = 30.0,
    skip: frozenset[str] = frozenset(),
) -> Report:
    """Send at least `total` generated requests to `base_url`, each case as every identity.

    `identities` maps a name to the headers that authenticate it (empty for anonymous).
    `skip` lists operations (`"METHOD /path"`) left out, e.g. ones that end the identities'
    own sessions.
    """
    schema = openapi.from_url(f"{base_url}/api-docs/openapi.json")
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if f"{result.ok().method.upper()} {result.ok().path}" not in skip
    ]
    report = Report(seed=seed_value)
    sessions = {name: requests.Session() for name in identities}
    started = time.perf_counter()
    # Per operation and mode a share of the total, every case sent as every identity. Small input
    # spaces end early (hypothesis stops when it has tried them all), so further rounds with the
    # next seeds top up until the total is reached.
    share = max(1, total // (len(operations) * len(MODES) * len(identities)))
    round_number = 0
    while report.requests < total:
        before = report.requests
        for index, operation in enumerate(operations):
            label = f"{operation.method.upper()} {operation.path}"
            for mode_index, mode in enumerate(MODES):
                send = _sender(
                    report, label, base_url, identities, sessions, slow_seconds, hang_seconds
                )
                test = given(case=operation.as_strategy(generation_mode=mode))(send)
                test = settings(
                    max_examples=share,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )(test)
                try:
                    seed(seed_value + round_number * 100_003 + index * 2 + mode_index)(test)()
                except Unsatisfiable:
                    pass  # e.g. no invalid input exists for an operation without parameters
        round_number += 1
        if report.requests == before:
            break  # nothing can be generated at all
    report.seconds = time.perf_counter() - started
    for session in sessions.values():
        session.close()
    return report


def _sender(
    report: Report,
    label: str,
    base_url: str,
    identities: Mapping[str, Mapping[str, str]],
    sessions: Mapping[str, requests.Session],
    slow_seconds: float,
    hang_seconds: float,
) -> Any:
    """The hypothesis test body for one operation: send the case as the next identity, record."""

    def send(case: Any) -> None:
        for name in identities:  # every case as every identity
            _send_one(
                report,
                label,
                case,
                base_url,
                identities[name],
                sessions[name],
                name,
                slow_seconds,
                hang_seconds,
            )

    return send


def _send_one(
    report: Report,
    label: str,
    case: Any,
    base_url: str,
    headers: Mapping[str, str],
    session: requests.Session,
    name: str,
    slow_seconds: float,
    hang_seconds: float,
) -> None:
    began = time.perf_counter()
    try:
        response = case.call(
            base_url=base_url,
            session=session,
            headers=dict(headers),
            timeout=hang_seconds,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        report.findings.append(f"{label} as {name}: {type(exc).__name__}")
        status = 0
    else:
        status = response.status_code
    took = time.perf_counter() - began
    report.requests += 1
    report.statuses[status] += 1
    report.per_operation[label] += 1
    report.slowest = max(report.slowest, took)
    if status >= 500:
        report.findings.append(f"{label} as {name}: {status} {_shown(case)}")
    elif took > slow_seconds:
        report.findings.append(f"{label} as {name}: {took:.1f} s")


def _shown(case: Any) -> str:
    """Enough of the request to reproduce it, cut short."""
    return repr(
        {
            "path_parameters": case.path_parameters,
            "query": case.query,
            "body": case.body if not isinstance(case.body, bytes) else case.body[:200],
        }
    )[:500]
