"""A real PostgreSQL HA cluster on loopback for tests and manual runs: etcd + 2 Patroni nodes.

Follows `shared/ops/patroni.md`: Debian's `etcd-server` and PostgreSQL, Patroni from PyPI in a
venv made with Debian's `/usr/bin/python3` (Patroni runs as `postgres`, which cannot read a Python
under root's home), data on tmpfs (`/dev/shm`), free ports, random passwords per run. Every
process runs in its own session so `close()` can kill its whole group, also after a failure.

Needs root (PostgreSQL refuses to run as root, so the nodes run as the `postgres` user) and
`ensure_installed()` (idempotent: `apt-get` and `pip` only when something is missing).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PATRONI_VENV = Path(os.environ.get("PRIVCHAT_PATRONI_VENV", "/opt/privchat-patroni-venv"))
APT_PACKAGES = ("etcd-server", "etcd-client", "haproxy")
SCOPE = "privchat-ha"
NAMESPACE = "/privchat/"


def ensure_installed() -> None:
    """Install etcd, HAProxy and Patroni when missing (root only; Debian)."""
    if not all(shutil.which(tool) for tool in ("etcd", "etcdctl", "haproxy")):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *APT_PACKAGES], check=True, env=env)
    if not (PATRONI_VENV / "bin" / "patroni").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(PATRONI_VENV)], check=True)
        subprocess.run(
            [
                str(PATRONI_VENV / "bin" / "pip"),
                "install",
                "-q",
                "patroni[etcd3]",
                "psycopg[binary]",
            ],
            check=True,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin_dir() -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise RuntimeError("no PostgreSQL under /usr/lib/postgresql")
    return str(versions[-1])


def _get_json(url: str, timeout: float = 0.5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


@dataclass
class Node:
    name: str
    rest_port: int
    pg_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None


@dataclass
class HaCluster:
    base: Path
    nodes: dict[str, Node]
    etcd_port: int
    etcd_peer_port: int
    superuser_password: str = field(default_factory=lambda: secrets.token_hex(12))
    replication_password: str = field(default_factory=lambda: secrets.token_hex(12))
    app_password: str = field(default_factory=lambda: secrets.token_hex(12))
    etcd: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls) -> HaCluster:
        base = Path(tempfile.mkdtemp(prefix="privchat-ha.", dir="/dev/shm"))
        nodes = {}
        for name in ("a", "b"):
            directory = base / name
            directory.mkdir(mode=0o700)
            nodes[name] = Node(name, free_port(), free_port(), directory)
        return cls(base, nodes, free_port(), free_port())

    # --- addresses ---------------------------------------------------------------------------

    @property
    def rest_urls(self) -> list[str]:
        return [f"{node.rest_url}/cluster" for node in self.nodes.values()]

    def dsn(self, node: str, database: str = "privchat", user: str = "privchat") -> str:
        password = self.superuser_password if user == "postgres" else self.app_password
        return f"postgresql://{user}:{password}@127.0.0.1:{self.nodes[node].pg_port}/{database}"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """etcd, then both nodes at once (one runs initdb, the other pg_basebackup); returns
        when one leads and the other streams, with the `privchat` role and database made."""
        pw = pwd.getpwnam("postgres")
        os.chown(self.base, 0, 0)
        os.chmod(self.base, 0o755)
        self.etcd = subprocess.Popen(
            [
                "etcd",
                "--name=privchat-etcd",
                f"--data-dir={self.base / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-cluster=privchat-etcd=http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-level=error",
            ],
            stdout=open(self.base / "etcd.log", "ab"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait(lambda: _get_json(f"http://127.0.0.1:{self.etcd_port}/health"), 20, "etcd")
        for node in self.nodes.values():
            os.chown(node.directory, pw.pw_uid, pw.pw_gid)
            (self.base / f"{node.name}.yml").write_text(self._config(node))
        for name in self.nodes:
            self.start_node(name)
        self.wait_healthy(timeout)
        self._create_app_role()

    def start_node(self, name: str) -> None:
        node = self.nodes[name]
        pw = pwd.getpwnam("postgres")
        node.process = subprocess.Popen(
            [str(PATRONI_VENV / "bin" / "patroni"), str(self.base / f"{name}.yml")],
            user=pw.pw_uid,
            group=pw.pw_gid,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin", "HOME": str(node.directory), "LANG": "C.UTF-8"},
            cwd=node.directory,
            start_new_session=True,
            stdout=open(self.base / f"{name}.log", "ab"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
        )

    def _config(self, node: Node) -> str:
        config = {
            "scope": SCOPE,
            "namespace": NAMESPACE,
            "name": node.name,
            "restapi": {
                "listen": f"127.0.0.1:{node.rest_port}",
                "connect_address": f"127.0.0.1:{node.rest_port}",
            },
            "etcd3": {"hosts": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {
                    "ttl": 20,
                    "loop_wait": 1,
                    "retry_timeout": 3,
                    "maximum_lag_on_failover": 1048576,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "max_connections": 100,
                            "wal_log_hints": "on",
                            "wal_retrieve_retry_interval": "500ms",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": _bin_dir(),
                "pgpass": str(node.directory / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": self.superuser_password},
                    "replication": {
                        "username": "replicator",
                        "password": self.replication_password,
                    },
                },
                "parameters": {
                    "unix_socket_directories": str(node.directory),
                    "shared_buffers": "32MB",
                    "fsync": "off",  # tmpfs, throwaway data
                },
                "pg_hba": [
                    "local all all trust",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
            },
        }
        return json.dumps(config)  # JSON is YAML

    def _wait(self, probe: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = probe()
                if result:
                    return result
            except (OSError, ValueError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready within {timeout} s; logs in {self.base}")
            time.sleep(0.05)

    def members(self) -> list[dict[str, Any]]:
        """The `/cluster` members as the first answering node sees them."""
        for url in self.rest_urls:
            try:
                return list(_get_json(url)["members"])
            except (OSError, ValueError, KeyError, urllib.error.URLError):
                continue
        return []

    def leader(self) -> str | None:
        for member in self.members():
            if member["role"] == "leader" and member["state"] == "running":
                return str(member["name"])
        return None

    def healthy(self) -> bool:
        """One running leader and one streaming replica, as both nodes see it."""
        for url in self.rest_urls:
            members = _get_json(url)["members"]
            roles = sorted((m["role"], m["state"]) for m in members)
            if roles != [("leader", "running"), ("replica", "streaming")]:
                return False
        return True

    def wait_healthy(self, timeout: float = 60.0) -> None:
        self._wait(self.healthy, timeout, "cluster")

    def wait_leader(self, other_than: str | None = None, timeout: float = 60.0) -> str:
        """The name of a running leader (not `other_than`), once Patroni reports one."""

        def probe() -> str | None:
            leader = self.leader()
            return leader if leader and leader != other_than else None

        return str(self._wait(probe, timeout, "new leader"))

    def _psql(self, node: str, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                f"{_bin_dir()}/psql",
                "-h",
                str(self.nodes[node].directory),
                "-p",
                str(self.nodes[node].pg_port),
                "-U",
                "postgres",
                "-d",
                database,
                "-Atq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            user="postgres",
        )
        return result.stdout.strip()

    def sql(self, node: str, sql: str, database: str = "privchat") -> str:
        """Run `sql` as superuser on `node` (over its unix socket); the output, unaligned."""
        return self._psql(node, sql, database)

    def _create_app_role(self) -> None:
        leader = self.wait_leader()
        self._psql(leader, f"CREATE ROLE privchat LOGIN PASSWORD '{self.app_password}'")
        self._psql(leader, "CREATE DATABASE privchat OWNER privchat")

    # --- failures ----------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """Hard crash: SIGKILL Patroni, its postmaster and every backend (pitfall 4)."""
        node = self.nodes[name]
        postmaster = node.postmaster_pid()
        if node.process is not None:
            _kill_group(node.process, signal.SIGKILL)
            node.process.wait()
        if postmaster is not None:
            children = subprocess.run(
                ["pgrep", "-P", str(postmaster)], capture_output=True, text=True
            ).stdout.split()
            for pid in [postmaster, *map(int, children)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def expire_leader_key(self) -> None:
        """What Patroni sees when the dead leader's TTL runs out, without waiting 20 s."""
        subprocess.run(
            [
                "etcdctl",
                f"--endpoints=127.0.0.1:{self.etcd_port}",
                "del",
                f"{NAMESPACE}{SCOPE}/leader",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """Graceful: SIGTERM the node's Patroni; it stops PostgreSQL and releases the key."""
        process = self.nodes[name].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process, signal.SIGKILL)
                process.wait()

    def switchover(self, leader: str, candidate: str) -> None:
        request = urllib.request.Request(
            f"{self.nodes[candidate].rest_url}/switchover",
            data=json.dumps({"leader": leader, "candidate": candidate}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            if response.status != 200:
                raise RuntimeError(f"switchover answered {response.status}")

    def close(self) -> None:
        """Stop everything this cluster started and delete its files; safe to call twice."""
        for name in self.nodes:
            try:
                self.stop(name, timeout=15)
            except Exception:  # noqa: BLE001 - teardown goes on
                pass
        for node in self.nodes.values():
            if node.process is not None:
                _kill_group(node.process, signal.SIGKILL)
            pid = node.postmaster_pid()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.etcd is not None:
            _kill_group(self.etcd, signal.SIGTERM)
            try:
                self.etcd.wait(10)
            except subprocess.TimeoutExpired:
                _kill_group(self.etcd, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
