"""Worker hosts for the tests: network namespaces on a private subnet (tests/support/hosts.py), with
a store, a broker and an emulator that listen on the subnet's bridge address, where every host reaches them.

Fixtures

`network` (session): the session's `Network` (its own subnet and bridge; `network.address` is where
services listen). Skips where namespaces cannot be made (not root, no iproute2), but fails under
CI (`CI=true`), which runs as root and must run these tests.

`network_store` (module): `NetworkStore`, a private Redis on the bridge address: `.url` the store
(database 0), `.broker_url` a Redis broker (database 1), `.client` a client of the store; both
databases are emptied before each test by `hosts`.

`network_emulator` (module): the emulator (an `EmulatorServer`, see tests/plugins/emulator.py) on
the bridge address, keeping idle connections open for KEEP_ALIVE_SECONDS, reset before each test by `hosts`.

`hosts` (function): `HostLauncher`; `hosts.worker(env)` makes a new host and starts a real pushsync
worker on it (through the `workers` launcher, with a node name of its own) and returns both. At the
end of the test, even a failed one, the workers are stopped before their hosts are removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.plugins.worker import Launcher
from tests.support.hosts import Host, Network, unavailable
from worker.children import Child
from worker.local_emulator import EmulatorServer, start_emulator, stop_emulator
from worker.store.embedded import EmbeddedRedis

STORE_DB, BROKER_DB = 0, 1
KEEP_ALIVE_SECONDS = 60
"""The emulator keeps idle connections this long, longer than any partition here, as the load balancer in
front of a real service does: a request a host sent into a partition then still finds its connection open
when the partition heals (with the emulator's default of 5 s, the server would have closed it and the
request would be refused with a reset, hiding what a real service would do with it)."""


@dataclass
class NetworkStore:
    """A private Redis server that every host reaches."""

    server: EmbeddedRedis
    url: str
    broker_url: str
    client: redis.Redis

    def flush(self) -> None:
        for url in (self.url, self.broker_url):
            with redis.Redis.from_url(url) as client:
                client.flushdb()


class HostLauncher:
    """Starts workers on hosts of their own."""

    def __init__(self, network: Network, workers: Launcher) -> None:
        self.network = network
        self.workers = workers
        self.hosts: list[Host] = []

    def worker(self, env: dict[str, str], *extra: str) -> tuple[Host, Child]:
        """A new host, and a pushsync worker (`env`, more Celery options `extra`) running on it."""
        host = self.network.add_host()
        self.hosts.append(host)
        return host, self.workers.start("worker", env, *extra, host=host)

    def close(self) -> None:
        # A namespace outlives its deletion while a process runs in it: the processes go first.
        self.workers.stop_all()
        for host in self.hosts:
            self.network.remove_host(host)


@pytest.fixture(scope="session")
def network() -> Iterator[Network]:
    """The session's private subnet (see the module docstring)."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"worker hosts cannot be made and CI requires them: {reason}")
        pytest.skip(f"worker hosts cannot be made here: {reason}")
    made = Network()
    yield made
    made.close()


@pytest.fixture(scope="module")
def network_store(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkStore]:
    """A private Redis on the bridge address (see the module docstring)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("network-redis"), host=network.address)
    base = server.url.rpartition("/")[0]
    store = NetworkStore(server, f"{base}/{STORE_DB}", f"{base}/{BROKER_DB}", redis.Redis.from_url(f"{base}/{STORE_DB}"))
    yield store
    store.client.close()
    server.stop()


@pytest.fixture(scope="module")
def network_emulator(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """The emulator on the bridge address (see the module docstring)."""
    server = start_emulator(tmp_path_factory.mktemp("network-emulator"), "--keep-alive", str(KEEP_ALIVE_SECONDS),
                            host=network.address)
    yield server
    stop_emulator(server)


@pytest.fixture()
def hosts(network: Network, network_store: NetworkStore, network_emulator: EmulatorServer,
          workers: Launcher) -> Iterator[HostLauncher]:
    """Workers on hosts of their own, against an empty store and broker and a reset emulator."""
    network_store.flush()
    network_emulator.reset()
    launcher = HostLauncher(network, workers)
    try:
        yield launcher
    finally:
        launcher.close()
