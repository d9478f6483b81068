"""The attestation service: one `dstack_sdk.AsyncDstackClient` per process.

Opened once by `connect_attestation`, before the database is touched: outside DEV it contacts the
guest agent (`DSTACK_SIMULATOR_ENDPOINT`, else the SDK's socket search) and fetches `Info` once,
caching it; an unreachable agent stops startup with a one-line `AttestationUnavailable` before
anything is written. `open_attestation` (a feature opener) then starts its probe. With DEV=true
it registers the mock (`mock.py`) and contacts nothing. Handlers call `attest(nonce)`, which
quotes `report_data` = TLS binding ‖ nonce (D14) under a deadline. A supervised probe logs
when the agent stops or starts answering. Logs carry statuses, error types and timings only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from dstack_sdk import AsyncDstackClient

from ..config import Config, ConfigError
from ..services.registry import Services
from ..services.supervisor import supervise
from .report_data import build_report_data, spki_sha256_of_pem

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 10.0
QUOTE_TIMEOUT = 10.0
PROBE_PERIOD = 60.0
MAX_CONCURRENT_QUOTES = 4


class AttestationUnavailable(ConfigError):
    """Outside DEV the guest agent could not be used at startup (one-line message)."""


class AttestationError(Exception):
    """A request-time failure; `message` is the reference's 500 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class OwnQuote:
    """privchat's own quote as the report shows it (`chat_api_gateway_attestation`)."""

    intel_quote: str
    event_log: Any  # the agent's event log, parsed from its JSON string; None when absent
    info: dict[str, Any] | None
    mock: bool = False


class Attestor(Protocol):
    binding: bytes | None
    mock: bool

    async def attest(self, nonce: bytes) -> OwnQuote: ...


def tls_binding(config: Config) -> bytes | None:
    """SHA-256 of the served certificate's SPKI when privchat terminates TLS itself, else None."""
    if not (config.tls_cert_file and config.tls_key_file):
        return None
    try:
        return spki_sha256_of_pem(config.tls_cert_file.read_bytes())
    except OSError as exc:
        raise ConfigError(
            f"TLS_CERT_FILE: cannot read {config.tls_cert_file}: {exc.strerror}"
        ) from None
    except ValueError:
        raise ConfigError("TLS_CERT_FILE: not a PEM certificate") from None


class AttestationService:
    mock = False

    def __init__(
        self,
        client: AsyncDstackClient,
        binding: bytes | None,
        *,
        quote_timeout: float = QUOTE_TIMEOUT,
        probe_period: float = PROBE_PERIOD,
    ) -> None:
        self.client = client
        self.binding = binding
        self.quote_timeout = quote_timeout  # seconds; the deadline of one quote
        self.probe_period = probe_period
        self.info: dict[str, Any] | None = None
        self.reachable = True
        self._limiter = trio.CapacityLimiter(MAX_CONCURRENT_QUOTES)
        self._closed = trio.Event()

    async def start(self, endpoint: str, within: float = STARTUP_TIMEOUT) -> None:
        """Fetch and cache `Info`; raise `AttestationUnavailable` when the agent does not answer."""
        try:
            self.info = await self._fetch_info(within)
        except Exception as exc:
            raise AttestationUnavailable(
                f"DSTACK_SIMULATOR_ENDPOINT: the dstack guest agent at {endpoint} did not answer "
                f"Info ({_error_name(exc)}); privchat does not serve without attestation outside "
                "DEV (set DEV=true for the mock)"
            ) from None
        log.info("dstack agent ready", extra={"tls_binding": self.binding is not None})

    async def _fetch_info(self, within: float) -> dict[str, Any]:
        with trio.fail_after(within):
            info = await self.client.info()
        # tcb_info arrives as a JSON string and is parsed by the SDK into its 0.5.x model;
        # serialise it with every field that model has.
        return info.model_dump(mode="json", serialize_as_any=True)

    async def attest(self, nonce: bytes) -> OwnQuote:
        """Quote TLS binding ‖ nonce. Raises `AttestationError` with the reference's texts."""
        if self.info is None:
            try:
                self.info = await self._fetch_info(self.quote_timeout)
            except Exception as exc:
                log.warning("dstack Info failed", extra={"error": _error_name(exc)})
                raise AttestationError("Failed to get chat API attestation info") from None
        report_data = build_report_data(self.binding, nonce)
        started = time.perf_counter()
        try:
            with trio.fail_after(self.quote_timeout):
                async with self._limiter:
                    response = await self.client.get_quote(report_data)
        except Exception as exc:
            log.warning(
                "dstack GetQuote failed",
                extra={"error": _error_name(exc), "ms": _ms(started)},
            )
            raise AttestationError("Failed to get chat API attestation") from None
        log.info("dstack quote", extra={"ms": _ms(started)})
        try:
            event_log = json.loads(response.event_log)
        except ValueError:
            raise AttestationError("Failed to deserialize event_log") from None
        return OwnQuote(intel_quote=response.quote, event_log=event_log, info=self.info)

    async def watch(self) -> None:
        """Supervised: probe the agent every `probe_period` seconds and log changes."""
        while True:
            with trio.move_on_after(self.probe_period):
                await self._closed.wait()
                return
            with trio.move_on_after(self.quote_timeout):
                reachable = False
                reachable = await self.client.is_reachable()
            if reachable != self.reachable:
                self.reachable = reachable
                if reachable:
                    log.info("dstack agent reachable again")
                else:
                    log.error("dstack agent unreachable")

    def close(self) -> None:
        self._closed.set()


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


@asynccontextmanager
async def connect_attestation(config: Config) -> AsyncIterator[Attestor]:
    """The process's `Attestor`: the mock with DEV=true, else the started `AttestationService`."""
    binding = tls_binding(config)
    if config.dev:
        from .mock import MockAttestation

        log.warning("DEV=true: attestation is a MOCK, no dstack agent is contacted")
        yield MockAttestation(binding)
        return
    endpoint = config.dstack_simulator_endpoint
    try:
        client = AsyncDstackClient(endpoint, timeout=QUOTE_TIMEOUT)
    except FileNotFoundError as exc:
        raise AttestationUnavailable(
            f"DSTACK_SIMULATOR_ENDPOINT: no dstack guest agent ({exc}); privchat does not serve "
            "without attestation outside DEV (set DEV=true for the mock)"
        ) from None
    async with client:
        service = AttestationService(client, binding)
        await service.start(endpoint or "the default socket")
        try:
            yield service
        finally:
            service.close()


@asynccontextmanager
async def open_attestation(svc: Services, nursery: trio.Nursery) -> AsyncIterator[None]:
    """The feature opener: the agent probe of the `svc.attestation` that the runtime connected."""
    if isinstance(svc.attestation, AttestationService):
        nursery.start_soon(supervise, "attestation-probe", svc.attestation.watch)
    yield
