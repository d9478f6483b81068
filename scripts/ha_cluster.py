"""Start the same HA cluster the tests use, by hand: etcd + 2 Patroni nodes on loopback/tmpfs.

    sudo python scripts/ha_cluster.py      # prints PATRONI_CLUSTER_URL and DATABASE_* to use;
                                           # Ctrl-C stops everything and deletes the data

Installs etcd/HAProxy (apt) and Patroni (a venv of Debian's python) first when missing.
"""

from __future__ import annotations

import signal
import sys
import time

from privchat.devtools.ha_cluster import HaCluster, ensure_installed


def main() -> int:
    ensure_installed()
    cluster = HaCluster.create()
    try:
        started = time.monotonic()
        cluster.start()
        print(f"cluster up in {time.monotonic() - started:.1f} s; leader {cluster.leader()}")
        print(f"PATRONI_CLUSTER_URL={','.join(cluster.rest_urls)}")
        print("DATABASE_USER=privchat DATABASE_NAME=privchat")
        print(f"DATABASE_PASSWORD={cluster.app_password}")
        print(f"data and logs: {cluster.base}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
