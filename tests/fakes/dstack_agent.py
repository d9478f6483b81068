"""A fake dstack guest agent over HTTP, for the real `dstack_sdk` via DSTACK_SIMULATOR_ENDPOINT.

It speaks the SDK's wire protocol (spec upstream.md §6.2): `POST /<Method>` with a JSON body,
JSON answers, byte fields as lowercase hex. It implements `Info`, `GetQuote`, `GetKey` and
`Version`, records the report_data it was asked to quote, and answers with a syntactically
valid TDX quote v4 that embeds exactly that report_data (like the dstack simulator with
`patch_report_data`), whose RTMRs are the replay of its event log. The Intel signature part is
made up, so a real signature check fails, as with the simulator.

    agent = FakeDstackAgent()
    endpoint = await nursery.start(serve_fake_dstack_agent, agent)   # "http://127.0.0.1:PORT"

Knobs: `fail_status` (every RPC answers that status), `hang_quote` / `hang_info` (the call
waits until `release()`), `tamper_binding` (the quote binds these 32 bytes instead of the
requested report_data[0:32]), `bad_event_log` (GetQuote's event_log is not JSON),
`measured_app_compose` (the quote's RTMRs are measured from this app-compose while the event log
and Info show `app_compose`: a tampered event log).

The quote is built here, independently of `privchat.attestation.quote`, so tests cross-check
the parser.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import trio

from . import FakeRequest, Reply, serve_handler

APP_COMPOSE = json.dumps(
    {
        "manifest_version": 2,
        "name": "privchat",
        "runner": "docker-compose",
        "docker_compose_file": "services:\n  privchat:\n    image: privchat@sha256:" + "ab" * 32,
    },
    separators=(",", ":"),
)
COMPOSE_HASH = hashlib.sha256(APP_COMPOSE.encode()).hexdigest()


def _event(imr: int, name: str, payload: bytes) -> dict[str, Any]:
    digest = hashlib.sha384(name.encode() + b":" + payload).hexdigest()
    return {
        "imr": imr,
        "event_type": 134217729,
        "digest": digest,
        "event": name,
        "event_payload": payload.hex(),
    }


def replay(digests: list[str]) -> bytes:
    mr = bytes(48)
    for digest in digests:
        mr = hashlib.sha384(mr + bytes.fromhex(digest).ljust(48, b"\x00")).digest()
    return mr


def build_quote(report_data: bytes, mrtd: bytes, rtmrs: list[bytes]) -> bytes:
    """A TDX quote v4: 48-byte header, 584-byte TD report 1.0, signature data."""
    header = struct.pack("<HHIHH", 4, 2, 0x81, 0, 0) + b"\x93\x9a\x72\x33" + bytes(12) + bytes(20)
    report = bytes(16) + b"\x11" * 48 + bytes(48) + bytes(8) + bytes(8) + b"\xe7\x18\x06" + bytes(5)
    report += mrtd + b"\x22" * 48 + bytes(48) + bytes(48) + b"".join(rtmrs) + report_data
    assert len(header) == 48 and len(report) == 584
    cert = b"-----BEGIN CERTIFICATE-----\nZmFrZSBQQ0sgY2hhaW4=\n-----END CERTIFICATE-----\n"
    signature = b"\x5a" * 64 + b"\xa5" * 64 + struct.pack("<HI", 5, len(cert)) + cert
    return header + report + struct.pack("<I", len(signature)) + signature


@dataclass
class FakeDstackAgent:
    app_compose: str = APP_COMPOSE
    fail_status: int | None = None
    hang_quote: bool = False
    hang_info: bool = False
    tamper_binding: bytes | None = None
    bad_event_log: bool = False
    measured_app_compose: str | None = None
    tcb_info_as_string: bool = True  # the real agent sends tcb_info as a JSON string
    quoted: list[bytes] = field(default_factory=list)  # report_data of every GetQuote, in order
    calls: list[str] = field(default_factory=list)  # RPC method names, in order
    _release: trio.Event = field(default_factory=trio.Event)

    def release(self) -> None:
        """Let hung calls answer."""
        self._release.set()

    @property
    def compose_hash(self) -> str:
        return hashlib.sha256(self.app_compose.encode()).hexdigest()

    def event_log(self, app_compose: str | None = None) -> list[dict[str, Any]]:
        compose_hash = hashlib.sha256((app_compose or self.app_compose).encode()).hexdigest()
        return [
            _event(0, "td-boot", b"fake firmware"),
            _event(1, "kernel", b"fake kernel"),
            _event(2, "initrd", b"fake initrd"),
            _event(3, "app-id", bytes.fromhex("fa" * 20)),
            _event(3, "compose-hash", bytes.fromhex(compose_hash)),
            _event(3, "instance-id", bytes.fromhex("1d" * 20)),
        ]

    def rtmrs(self) -> list[bytes]:
        log = self.event_log(self.measured_app_compose)
        return [replay([e["digest"] for e in log if e["imr"] == i]) for i in range(4)]

    @property
    def mrtd(self) -> bytes:
        return hashlib.sha384(b"fake mrtd").digest()

    def tcb_info(self) -> dict[str, Any]:
        rtmrs = self.rtmrs()
        return {
            "mrtd": self.mrtd.hex(),
            **{f"rtmr{i}": rtmrs[i].hex() for i in range(4)},
            "mr_aggregated": hashlib.sha256(b"".join(rtmrs)).hexdigest(),
            "os_image_hash": hashlib.sha256(b"fake os").hexdigest(),
            "compose_hash": self.compose_hash,
            "device_id": hashlib.sha256(b"fake device").hexdigest(),
            "app_compose": self.app_compose,
            "event_log": self.event_log(),
        }

    def info(self) -> dict[str, Any]:
        tcb = self.tcb_info()
        return {
            "app_id": "fa" * 20,
            "instance_id": "1d" * 20,
            "app_cert": "-----BEGIN CERTIFICATE-----\nZmFrZSBhcHA=\n-----END CERTIFICATE-----\n",
            "tcb_info": json.dumps(tcb) if self.tcb_info_as_string else tcb,
            "app_name": "privchat",
            "device_id": tcb["device_id"],
            "mr_aggregated": tcb["mr_aggregated"],
            "os_image_hash": tcb["os_image_hash"],
            "key_provider_info": '{"name":"fake-kms"}',
            "compose_hash": self.compose_hash,
            "vm_config": '{"cpu_count":2}',
        }

    def quote(self, report_data: bytes) -> bytes:
        data = report_data.ljust(64, b"\x00")
        if self.tamper_binding is not None:
            data = self.tamper_binding + data[32:]
        return build_quote(data, self.mrtd, self.rtmrs())

    async def handle(self, request: FakeRequest) -> Reply:
        method = request.path.lstrip("/")
        self.calls.append(method)
        if request.method != "POST":
            return Reply(405)
        if self.fail_status is not None:
            return Reply.json({"error": "fake agent failure"}, self.fail_status)
        body = request.json() if request.body else {}
        if method == "Info":
            if self.hang_info:
                await self._release.wait()
            return Reply.json(self.info())
        if method == "GetQuote":
            report_data = bytes.fromhex(body["report_data"])
            if not report_data or len(report_data) > 64:
                return Reply.json({"error": "invalid report_data"}, 400)
            self.quoted.append(report_data)
            if self.hang_quote:
                await self._release.wait()
            event_log = "not json" if self.bad_event_log else json.dumps(self.event_log())
            return Reply.json(
                {
                    "quote": self.quote(report_data).hex(),
                    "event_log": event_log,
                    "report_data": report_data.hex(),
                    "vm_config": "",
                }
            )
        if method == "GetKey":
            key = hashlib.sha256(f"{body.get('path')}/{body.get('purpose')}".encode()).hexdigest()
            return Reply.json({"key": key, "signature_chain": []})
        if method == "Version":
            return Reply.json({"version": "0.5.4-fake", "rev": "fake"})
        return Reply.json({"error": f"unknown method {method}"}, 404)


async def serve_fake_dstack_agent(
    agent: FakeDstackAgent, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `agent` on 127.0.0.1 at a free port; `task_status.started` gets `http://HOST:PORT`."""

    class _Status:
        def started(self, base_url: str) -> None:
            task_status.started(base_url.rstrip("/"))

    await serve_handler(agent.handle, task_status=_Status())  # type: ignore[arg-type]
