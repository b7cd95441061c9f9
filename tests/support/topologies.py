"""Real Redis topologies on this machine, from Debian's `redis-server`: a Cluster, a Sentinel-watched primary.

Each server runs on a free loopback port, with its files in a directory of its own, and is stopped
by `stop()`. The fixtures of tests/plugins/topologies.py start them once per module:

- `RedisClusterTopology`: 3 primaries with one replica each (6 nodes), `url` the `redis+cluster://`
  form; `kill_primary_of(key)` SIGKILLs the primary serving a key and waits until its replica took over.
- `SentinelTopology`: a primary, a replica and three Sentinels, `url` the `redis+sentinel://` form;
  `kill_primary()` SIGKILLs the primary and waits until the Sentinels promoted the replica.

Given `Tls` files (a test CA's, and a certificate it signed for loopback), either speaks TLS only, on
every link (clients, replication, the cluster bus, the Sentinels), and `url` is the `rediss+` form.

Helpers of other tests (durable acknowledgement, failover under load) use the same classes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import trustme
from redis.cluster import RedisCluster

from worker.children import Child

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
LOOPBACK = "127.0.0.1"
CLUSTER_BUS_OFFSET = 10000
"""A Cluster node also listens on its port plus this, for the cluster bus."""
HIGHEST_CLUSTER_PORT = 65535 - CLUSTER_BUS_OFFSET
CLUSTER_PRIMARIES = 3
CLUSTER_NODE_TIMEOUT_MS = 1000
"""How long a Cluster node may be silent before it counts as failing: failovers take a couple of seconds."""
SENTINELS = 3
SENTINEL_QUORUM = 2
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 3000
MASTER_NAME = "mymaster"
START_TIMEOUT_SECONDS = 30.0
FAILOVER_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.1
SERVER_OPTIONS = ("--bind", LOOPBACK, "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction",
                  "--protected-mode", "no")
"""As pushsync wants its store: every write kept, nothing evicted."""


class Tls:
    """A test CA's certificate, and a certificate and key it signed for loopback, as files in `directory`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        authority = trustme.CA()
        issued = authority.issue_cert(LOOPBACK, "localhost")
        self.ca, self.cert, self.key = directory / "ca.pem", directory / "server.pem", directory / "server.key"
        authority.cert_pem.write_to_path(str(self.ca))
        issued.cert_chain_pems[0].write_to_path(str(self.cert))
        issued.private_key_pem.write_to_path(str(self.key))

    def listen(self, port: int) -> list[str]:
        """redis-server arguments that make it listen on `port` over TLS only and replicate over TLS."""
        return ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.cert),
                "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no",
                "--tls-replication", "yes"]

    @property
    def client_options(self) -> dict[str, Any]:
        """redis-py's options for a client of these servers."""
        return {"ssl": True, "ssl_ca_certs": str(self.ca)}

    @property
    def query(self) -> str:
        """The `?` part of a store URL of these servers."""
        return f"?ssl_ca_certs={self.ca}"

    @property
    def cli(self) -> list[str]:
        """redis-cli's arguments for these servers."""
        return ["--tls", "--cacert", str(self.ca)]


def _listen(port: int, tls: Tls | None) -> list[str]:
    return tls.listen(port) if tls else ["--port", str(port)]


def _scheme(form: str, tls: Tls | None) -> str:
    return f"rediss+{form}" if tls else f"redis+{form}"


def free_port(*, bus: bool = False) -> int:
    """A loopback port nothing listens on (and, when `bus`, its Cluster bus port neither)."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if not bus:
            return port
        if port <= HIGHEST_CLUSTER_PORT and _free(port + CLUSTER_BUS_OFFSET):
            return port


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` (errors count as not yet) until it is true; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (redis.RedisError, OSError) as exc:
            last, value = exc, None
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"not reached in {timeout:.0f}s: {what}" + (f" (last error: {last})" if last else ""))


class Server:
    """One redis-server process on `port`, with its files in `directory`."""

    def __init__(self, directory: Path, port: int, *args: str, password: str | None = None,
                 tls: Tls | None = None) -> None:
        """
        directory: where the server keeps its data, config and log (made if missing).
        port: the loopback port it listens on.
        args: further redis-server arguments (a config file first, if any).
        password: what clients (and replicas of it, and it of its primary) must give; None for none.
        tls: the files it speaks TLS with (only TLS); None for plain TCP.
        """
        self.directory, self.port, self.args, self.password, self.tls = directory, port, args, password, tls
        directory.mkdir(parents=True, exist_ok=True)
        self.child: Child | None = None
        self.start()

    def start(self, *extra: str) -> None:
        """Start the process and wait until it answers; `extra`: arguments of this start only."""
        command = [REDIS_SERVER, *self.args, *extra, *_listen(self.port, self.tls), "--dir", str(self.directory),
                   *SERVER_OPTIONS, *self._auth()]
        self.child = Child(f"redis-server:{self.port}", command, env={}, log_path=self.directory / "server.log")
        self.child.wait_until(self._answers, START_TIMEOUT_SECONDS)

    def _answers(self) -> bool:
        try:
            return self.client().ping()
        except (redis.RedisError, OSError):
            return False

    def _auth(self) -> list[str]:
        return ["--requirepass", self.password, "--masterauth", self.password] if self.password else []

    def client(self, **options: Any) -> redis.Redis:
        """A client of this one server (not following any topology)."""
        return redis.Redis(LOOPBACK, self.port, socket_timeout=2, socket_connect_timeout=2, password=self.password,
                           **(self.tls.client_options if self.tls else {}), **options)

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash of its host would."""
        if self.child is not None:
            self.child.kill()

    def stop(self) -> None:
        if self.child is not None and self.alive:
            self.child.stop(timeout=10)


class RedisClusterTopology:
    """A 3-primary Redis Cluster with a replica of each primary, on loopback ports."""

    def __init__(self, directory: Path, password: str | None = None, tls: Tls | None = None) -> None:
        """
        directory: an empty directory for the nodes' files (one subdirectory each).
        password: what every node requires (in `url` too); None for none.
        tls: the files every node speaks TLS with, on every link; None for plain TCP.
        """
        self.password, self.tls = password, tls
        self.nodes: list[Server] = []
        try:
            for n in range(CLUSTER_PRIMARIES * 2):
                port = free_port(bus=True)
                self.nodes.append(Server(
                    directory / f"node-{port}", port, "--cluster-enabled", "yes",
                    "--cluster-config-file", str(directory / f"node-{port}" / "nodes.conf"),
                    "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                    *(["--tls-cluster", "yes"] if tls else []), password=password, tls=tls))
            subprocess.run([REDIS_CLI, *(tls.cli if tls else []), "--cluster", "create",
                            *(f"{LOOPBACK}:{node.port}" for node in self.nodes), "--cluster-replicas", "1", "--cluster-yes"],
                           check=True, capture_output=True, timeout=START_TIMEOUT_SECONDS,
                           env={**os.environ, "REDISCLI_AUTH": password} if password else None)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The store URL, seeded with every node."""
        hosts = ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes)
        return f"{_scheme('cluster', self.tls)}://{_userinfo(self.password)}{hosts}{self.tls.query if self.tls else ''}"

    def seed_url(self) -> str:
        """The store URL seeded with one living node only (a Cluster client finds the others)."""
        port = next(node for node in self.nodes if node.alive).port
        return f"{_scheme('cluster', self.tls)}://{_userinfo(self.password)}{LOOPBACK}:{port}{self.tls.query if self.tls else ''}"

    def client(self) -> RedisCluster:
        return RedisCluster(startup_nodes=[redis.cluster.ClusterNode(LOOPBACK, node.port) for node in self.nodes
                                           if node.alive], socket_timeout=2, socket_connect_timeout=2,
                           password=self.password, **(self.tls.client_options if self.tls else {}))

    def flush(self) -> None:
        """Empty every primary (a test's leftovers are not the next one's)."""
        for row in self._view():
            if row["primary"] and not row["failing"]:
                self.node(row["port"]).client().flushall()

    def node(self, port: int) -> Server:
        return next(node for node in self.nodes if node.port == port)

    def _view(self) -> list[dict[str, Any]]:
        """CLUSTER NODES as a living node sees it: port, role, whether failing, primary's id, id."""
        seen = next(node for node in self.nodes if node.alive)
        rows = []
        for address, row in seen.client().execute_command("CLUSTER NODES").items():
            flags = row["flags"].split(",")
            rows.append({"id": row["node_id"], "port": int(address.split("@")[0].rsplit(":", 1)[1]),
                         "primary": "master" in flags, "failing": "fail" in flags, "of": row["master_id"]})
        return rows

    def healthy(self) -> bool:
        """Every living node says cluster_state:ok, each living replica is in sync with its primary (one
        that never was could not take over), and 3 living primaries serve the slots."""
        for node in self.nodes:
            if not node.alive:
                continue
            if node.client().cluster("info").get("cluster_state") != "ok":
                return False
            replication = node.client().info("replication")
            if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                return False
        living = {node.port for node in self.nodes if node.alive}
        primaries = [row for row in self._view() if row["primary"] and not row["failing"]]
        return len(primaries) == CLUSTER_PRIMARIES and all(row["port"] in living for row in primaries)

    def wait_healthy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        wait_until(self.healthy, timeout, "the Redis Cluster healthy (cluster_state:ok, 3 living primaries)")

    def primary_of(self, key: str) -> Server:
        """The node serving `key`'s slot now."""
        slot = self.client().keyslot(key)
        port = self.client().nodes_manager.get_node_from_slot(slot).port
        return self.node(port)

    def kill_primary_of(self, key: str, timeout: float = FAILOVER_TIMEOUT_SECONDS, *, synced: bool = False,
                        on_killed: Callable[[], None] | None = None) -> tuple[Server, Server]:
        """SIGKILL the primary serving `key` and wait until its replica took over; (killed, promoted).

        synced: first wait (WAIT) until the replica has every write made so far, so that only the
            outage is tested, not the loss asynchronous replication allows.
        on_killed: called right after the SIGKILL, before the wait for the replica.
        """
        killed = self.primary_of(key)
        killed_id = next(row["id"] for row in self._view() if row["port"] == killed.port)
        replica_ports = {row["port"] for row in self._view() if row["of"] == killed_id}
        if synced:
            killed.client().wait(1, int(timeout * 1000))
        killed.kill()
        if on_killed is not None:
            on_killed()
        self.wait_healthy(timeout)
        promoted = next(row["port"] for row in self._view() if row["port"] in replica_ports and row["primary"])
        return killed, self.node(promoted)

    def kill_shard_of(self, key: str, *, synced: bool = False) -> list[Server]:
        """SIGKILL the primary serving `key` and its replicas: the Cluster is down (CLUSTERDOWN on every
        node) until they are `restart`ed; the nodes killed. synced: as for `kill_primary_of`."""
        primary = self.primary_of(key)
        primary_id = next(row["id"] for row in self._view() if row["port"] == primary.port)
        shard = [primary, *(self.node(row["port"]) for row in self._view() if row["of"] == primary_id)]
        if synced:
            primary.client().wait(len(shard) - 1, int(FAILOVER_TIMEOUT_SECONDS * 1000))
        for node in shard:
            node.kill()
        return shard

    def restart(self, node: Server) -> None:
        """Start a killed node again (it rejoins as a replica of whoever took its place)."""
        node.start()
        if all(other.alive for other in self.nodes):
            self.wait_healthy()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelTopology:
    """A primary, its replica and three Sentinels watching master `MASTER_NAME`, on loopback ports."""

    def __init__(self, directory: Path, password: str | None = None, tls: Tls | None = None) -> None:
        """
        directory: an empty directory for the servers' files (one subdirectory each).
        password: what the primary and replica require (in `url` too; the Sentinels require none).
        tls: the files every server and Sentinel speaks TLS with, on every link; None for plain TCP.
        """
        self.password, self.tls = password, tls
        self.servers: list[Server] = []
        self.sentinels: list[Server] = []
        try:
            primary = Server(directory / "primary", free_port(), password=password, tls=tls)
            self.servers = [primary, Server(directory / "replica", free_port(), "--replicaof", LOOPBACK,
                                            str(primary.port), password=password, tls=tls)]
            for n in range(SENTINELS):
                folder = directory / f"sentinel-{n}"
                folder.mkdir()
                config = folder / "sentinel.conf"
                # Each Sentinel rewrites its own file with what it learns.
                config.write_text(
                    f"sentinel monitor {MASTER_NAME} {LOOPBACK} {primary.port} {SENTINEL_QUORUM}\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} {SENTINEL_DOWN_AFTER_MS}\n"
                    f"sentinel failover-timeout {MASTER_NAME} {SENTINEL_FAILOVER_TIMEOUT_MS}\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 1\n"
                    + (f"sentinel auth-pass {MASTER_NAME} {password}\n" if password else ""))
                self.sentinels.append(_SentinelServer(folder, free_port(), str(config), "--sentinel", tls=tls))
            wait_until(self._settled, START_TIMEOUT_SECONDS, "the Sentinels seeing the replica and each other")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The store URL naming every Sentinel, the master and database 0."""
        hosts = ",".join(f"{LOOPBACK}:{sentinel.port}" for sentinel in self.sentinels)
        return f"{_scheme('sentinel', self.tls)}://{_userinfo(self.password)}{hosts}/{MASTER_NAME}/0{self.tls.query if self.tls else ''}"

    def _settled(self) -> bool:
        for sentinel in self.sentinels:
            client = sentinel.client()
            if len(client.sentinel_slaves(MASTER_NAME)) < 1 or len(client.sentinel_sentinels(MASTER_NAME)) < SENTINELS - 1:
                return False
        return self.primary().client().info("replication").get("connected_slaves", 0) >= 1

    def flush(self) -> None:
        """Empty the primary (its replica follows)."""
        self.primary().client().flushall()

    def primary(self) -> Server:
        """The server the Sentinels name as the primary now."""
        _, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(MASTER_NAME)
        return next(server for server in self.servers if server.port == int(port))

    def replica(self) -> Server:
        primary = self.primary()
        return next(server for server in self.servers if server is not primary and server.alive)

    def kill_primary(self, timeout: float = FAILOVER_TIMEOUT_SECONDS) -> tuple[Server, Server]:
        """SIGKILL the primary and wait until every Sentinel names the replica and it acts as primary;
        (killed, promoted)."""
        killed, replica = self.primary(), self.replica()
        killed.kill()

        def promoted() -> bool:
            named = {int(s.client().sentinel_get_master_addr_by_name(MASTER_NAME)[1]) for s in self.sentinels if s.alive}
            # A failover still under way could yet be undone: a restart of the killed one now made it flap.
            settled = all(not state.get("is_failover_in_progress") and not state.get("is_odown")
                          for state in (s.client().sentinel_master(MASTER_NAME) for s in self.sentinels if s.alive))
            return named == {replica.port} and settled and replica.client().info("replication")["role"] == "master"

        wait_until(promoted, timeout, f"the Sentinels promoting the replica on port {replica.port}")
        return killed, replica

    def restart(self, server: Server) -> None:
        """Start a killed server again, as a replica of the new primary (as the Sentinels would make it,
        after seeing it answer as a primary for a while)."""
        server.start("--replicaof", LOOPBACK, str(self.primary().port))
        wait_until(lambda: server.client().info("replication").get("master_link_status") == "up",
                   FAILOVER_TIMEOUT_SECONDS, f"port {server.port} replicating the new primary")

    def stop(self) -> None:
        for server in [*self.sentinels, *self.servers]:
            server.stop()


def _userinfo(password: str | None) -> str:
    return f":{password}@" if password else ""


class _SentinelServer(Server):
    """A Sentinel: the same process, but no data options (a Sentinel refuses them)."""

    def start(self, *extra: str) -> None:
        command = [REDIS_SERVER, *self.args, *extra, *_listen(self.port, self.tls), "--bind", LOOPBACK,
                   "--protected-mode", "no", "--dir", str(self.directory)]
        self.child = Child(f"redis-sentinel:{self.port}", command, env={}, log_path=self.directory / "server.log")
        self.child.wait_until(self._answers, START_TIMEOUT_SECONDS)
