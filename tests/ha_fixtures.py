"""A real Patroni cluster (privchat/devtools/ha_cluster.py), `privchat serve` processes over it,
and the client load whose outcomes the HA tests measure."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from privchat.devtools.ha_cluster import HaCluster, ensure_installed, free_port

from .fakecloud_fixtures import API_KEY, stream_body

FIGURES = os.environ.get("PRIVCHAT_HA_FIGURES")  # a file: the figures as JSON lines
# One stream per user per this many seconds: `/v1/responses` accepts one a second per user.
STREAM_PERIOD = 1.05


def record_figures(name: str, figures: dict[str, Any]) -> None:
    print(f"HA figures {name}: {json.dumps(figures)}")
    if FIGURES:
        with open(FIGURES, "a") as out:
            out.write(json.dumps({"test": name, **figures}) + "\n")


def ha_cluster_fixture() -> Iterator[HaCluster]:
    """The body of each HA test module's `ha_cluster` fixture (one cluster per module)."""
    if os.geteuid() != 0:
        pytest.skip("the Patroni nodes run as the postgres user: needs root (CI runs as root)")
    ensure_installed()
    cluster = HaCluster.create()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@dataclass
class Replica:
    """One `privchat serve` process over the cluster; its log goes to a file."""

    process: trio.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_privchat(
    cluster: HaCluster, cloud_url: str, directory: Path, port: int | None = None, **env: str
) -> Replica:
    port = port or free_port()
    log = directory / f"privchat-{port}.log"
    environ = {
        **os.environ,
        "PATRONI_CLUSTER_URL": ",".join(cluster.rest_urls),
        "DATABASE_USER": "privchat",
        "DATABASE_NAME": "privchat",
        "DATABASE_PASSWORD": cluster.app_password,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": str(port),
        "OPENAI_BASE_URL": cloud_url,
        "OPENAI_API_KEY": API_KEY,
        "FRONTEND_DIR": str(directory),
        "DEV": "true",
        "LOG_FORMAT": "json",
        "SHUTDOWN_GRACE_SECONDS": "20",
        **env,
    }
    environ.pop("DATABASE_URL", None)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "privchat", "serve"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115 - the child owns it
        cwd=directory,
        start_new_session=True,
    )
    replica = Replica(process, port, log)
    async with httpx2.AsyncClient(timeout=2) as client:
        with trio.fail_after(60):
            while True:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    if (await client.get(f"{replica.url}/ready")).status_code == 200:
                        return replica
                except httpx2.HTTPError:
                    pass
                await trio.sleep(0.05)


async def stop_privchat(replica: Replica, sig: int = signal.SIGTERM, within: float = 30) -> int:
    if replica.process.poll() is None:
        replica.process.send_signal(sig)
    with trio.move_on_after(within):
        return await replica.process.wait()
    replica.process.kill()
    await replica.process.wait()
    raise AssertionError(f"privchat did not exit within {within} s after {sig}")


@dataclass
class Outcome:
    kind: str
    start: float
    end: float
    status: int  # 0: no HTTP answer
    retry_after: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Load:
    """Writes (log-ins, conversation create + track, settings updates) and streamed responses
    through privchat's API; remembers what was acknowledged to verify it on the database."""

    base: str
    outcomes: list[Outcome] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)  # token hashes of acknowledged log-ins
    conversations: set[str] = field(default_factory=set)
    settings: dict[str, str] = field(default_factory=dict)  # token hash -> acked system prompt
    streams_completed: int = 0
    stream_starts: int = 0
    stop: trio.Event = field(default_factory=trio.Event)
    stream_headers: dict[str, str] = field(default_factory=dict)  # e.g. the fake's pace knobs

    async def _request(
        self, client: httpx2.AsyncClient, kind: str, method: str, path: str, **kw: Any
    ) -> httpx2.Response | None:
        start = time.monotonic()
        try:
            response = await client.request(method, self.base + path, **kw)
        except httpx2.HTTPError:
            self.outcomes.append(Outcome(kind, start, time.monotonic(), 0))
            return None
        self.outcomes.append(
            Outcome(
                kind,
                start,
                time.monotonic(),
                response.status_code,
                "retry-after" in response.headers,
            )
        )
        return response

    async def writer(self, client: httpx2.AsyncClient) -> None:
        while not self.stop.is_set():
            email = f"ha-{uuid.uuid4().hex[:12]}@example.com"
            response = await self._request(
                client, "login", "POST", "/v1/auth/mock-login", json={"email": email}
            )
            if response is None or response.status_code != 200:
                await trio.sleep(0.05)
                continue
            token = response.json()["token"]
            token_hash = hashlib.sha256(token.encode()).hexdigest()
            self.sessions.add(token_hash)
            headers = {"Authorization": f"Bearer {token}"}
            response = await self._request(
                client, "conversation", "POST", "/v1/conversations", json={}, headers=headers
            )
            if response is not None and response.status_code == 200:
                self.conversations.add(response.json()["id"])
            prompt = f"prompt-{uuid.uuid4().hex[:8]}"
            response = await self._request(
                client,
                "settings",
                "PATCH",
                "/v1/users/me/settings",
                json={"system_prompt": prompt},
                headers=headers,
            )
            if response is not None and response.status_code == 200:
                self.settings[token_hash] = prompt
            await trio.sleep(0.02)

    async def streamer(self, client: httpx2.AsyncClient, token: str) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "content-type": "application/json",
            **self.stream_headers,
        }
        while not self.stop.is_set():
            start = head = time.monotonic()
            self.stream_starts += 1
            status = 0
            retry_after = False
            try:
                async with client.stream(
                    "POST", self.base + "/v1/responses", content=stream_body(), headers=headers
                ) as response:
                    head = time.monotonic()  # accepted (or not) by the rate limiter before this
                    status = response.status_code
                    retry_after = "retry-after" in response.headers
                    body = b"".join([chunk async for chunk in response.aiter_bytes()])
                if status == 200 and b"response.completed" in body:
                    self.streams_completed += 1
                elif status == 200:
                    status = 0  # cut short
            except httpx2.HTTPError:
                status = 0
            self.outcomes.append(Outcome("stream", start, time.monotonic(), status, retry_after))
            await trio.sleep(max(0.0, head + STREAM_PERIOD - time.monotonic()))  # rate limit

    def failures(self) -> dict[str, int]:
        """Failed requests counted by kind and answer, e.g. `{"login 503": 4, "stream 0": 1}`
        (status 0: no HTTP answer or a stream cut short; `+RA`: with `Retry-After`)."""
        counts: dict[str, int] = {}
        for o in self.outcomes:
            if not o.ok:
                key = f"{o.kind} {o.status}{'+RA' if o.retry_after else ''}"
                counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def writes(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind != "stream"]

    def write_outage(self, after: float) -> tuple[float, float | None]:
        """(first failed write at or after `after`, first successful write after that);
        (nan, None) when no write failed."""
        failed = [o for o in self.writes() if o.start >= after and not o.ok]
        if not failed:
            return float("nan"), None
        first_failed = min(o.end for o in failed)
        later = [o.end for o in self.writes() if o.ok and o.start > first_failed]
        return first_failed, (min(later) if later else None)

    def verify(self, cluster: HaCluster, leader: str) -> dict[str, int]:
        """How many acknowledged writes the leader lacks (each must be 0)."""
        hashes = set(cluster.sql(leader, "SELECT token_hash FROM sessions").split())
        conversations = set(cluster.sql(leader, "SELECT id FROM conversations").split())
        rows = cluster.sql(
            leader,
            "SELECT s.token_hash, u.content->>'system_prompt' FROM sessions s"
            " JOIN user_settings u USING (user_id)",
        )
        prompts = dict(line.split("|", 1) for line in rows.splitlines() if line)
        return {
            "sessions": len(self.sessions - hashes),
            "conversations": len(self.conversations - conversations),
            "settings": sum(1 for h, p in self.settings.items() if prompts.get(h) != p),
        }


async def login(base: str) -> str:
    async with httpx2.AsyncClient(timeout=10) as client:
        response = await client.post(
            base + "/v1/auth/mock-login", json={"email": f"s-{uuid.uuid4().hex[:10]}@example.com"}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["token"])
