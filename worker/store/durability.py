"""Durable writes: a write that a later step depends on is confirmed by the store's replicas first.

Redis replicates asynchronously: a primary that dies right after it answered a write may take that
write with it, and the replica promoted in its place never had it. With
`PUSHSYNC_STORE_MIN_REPLICAS=N`, every step whose writes something later relies on (ingestion before
it acknowledges a message, a claim before its push task is sent, a lease before a push, the
high-water marks, the release and the burst's state before a push or IDLE task acknowledges) waits for N
replicas to confirm
them: Redis `WAIT N` (`WAITAOF`, which also waits for the replicas' append-only files, on Redis 7.2
and later; older servers lack it, and WAIT is used there).

WAIT counts the writes made on the connection that sends it. So a step's writes and its WAIT all go
through `Durability.client`, a client of one connection (on a Cluster, one per node, and the WAIT goes
to every primary on its own), and a reconnection between them is noticed
(counted by the connection's `redis_connect_func`): writes sent before it may be gone with the old primary,
so the step is done again, never confirmed by a WAIT on a new connection that wrote nothing.

Replicas that do not confirm within `CONFIRM_MILLISECONDS` are a store outage
(`ReplicasUnconfirmed`, a `redis.ConnectionError`): the step is not acknowledged, and whatever waits
on it waits as it does for a store that does not answer. It never counts against a message.
"""

from __future__ import annotations

import os
from functools import cache

import redis

from producers.redis_urls import DeferredCluster, StoreClient, client_for
from worker.settings import Settings
from worker.store.connection import HEALTH_CHECK_SECONDS, SOCKET_TIMEOUT_SECONDS, store_url

CONFIRM_MILLISECONDS = 1000
"""How long one WAIT waits for the replicas; far under every broker redelivery timeout (a minute at
least) and under the store's socket timeout, so a waiting step tries again instead of timing out."""
WAITAOF_SINCE = (7, 2)
"""The Redis version that has WAITAOF."""


class ReplicasUnconfirmed(redis.ConnectionError):
    """Fewer replicas than required confirmed a step's writes in time: the step is not acknowledged."""

    def __init__(self, message: str, *, lost: bool) -> None:
        """
        message: what happened, in one line.
        lost: the connection was replaced since the writes were sent, so they may be gone and must be made again.
        """
        super().__init__(message)
        self.lost = lost


@cache
def _waitaof_local(client: redis.Redis) -> int | None:
    """What WAITAOF asks of the primary's own append-only file behind `client` (1 when it keeps one, else 0),
    or None when the server has no WAITAOF; asked once per client."""
    version = str(client.info("server").get("redis_version", "0"))
    if tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) < WAITAOF_SINCE:
        return None
    return 1 if client.info("persistence").get("aof_enabled") else 0


class Durability:
    """Confirms a step's writes by `min_replicas` replicas before the step is acknowledged."""

    def __init__(self, client: StoreClient, min_replicas: int, url: str | None = None) -> None:
        """
        client: the coalescing store (its connection settings; steps write through `self.client`).
        min_replicas: replicas that must confirm each step (0: confirm nothing, write through `client` as it is).
        url: the store's URL, from which a Cluster's client of one connection per node is made (a Cluster only).
        """
        self.shared = client
        self.min_replicas = min_replicas
        self.url = url
        self._pid = 0
        self._held: StoreClient | None = None
        self._handshake = None
        """What the shared pool's connections run when they connect, if anything but `on_connect`."""
        self._connections = 0
        """Connections the held client opened: a change between a step's start and its WAIT voids the WAIT."""

    @classmethod
    def of(cls, client: StoreClient, settings: Settings) -> Durability:
        """The durability that `settings` ask for, on `client`."""
        return cls(client, settings.store_min_replicas, store_url(settings))

    @property
    def client(self) -> StoreClient:
        """The client a durable step writes through: the shared one when nothing is confirmed; otherwise
        this process's client of one connection (one per node of a Cluster), so that its WAIT counts every
        write of the step."""
        if not self.min_replicas:
            return self.shared
        if self._held is None or self._pid != os.getpid():
            self._held, self._pid, self._connections = self._one_connection(), os.getpid(), 0
        return self._held

    def _one_connection(self) -> StoreClient:
        if isinstance(self.shared, DeferredCluster):
            # redis-py's Cluster runs its own set-up of a node's connection, then this counter.
            return client_for(self.url or "", socket_timeout=SOCKET_TIMEOUT_SECONDS,
                              socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, health_check_interval=HEALTH_CHECK_SECONDS,
                              connection_pool_class=redis.BlockingConnectionPool, max_connections=1,
                              redis_connect_func=self._counted)
        pool = self.shared.connection_pool
        options = dict(pool.connection_kwargs)
        self._handshake = options.get("redis_connect_func")
        # Counted as each connection is set up (redis-py's hook for that), so none is missed; and
        # nothing connects before the first command, so a store that is down at start-up is an outage.
        options["redis_connect_func"] = self._connected
        # A pool of one connection that callers take turns on (the push thread and its lease renewals).
        held = redis.BlockingConnectionPool(max_connections=1, timeout=None, connection_class=pool.connection_class,
                                            **options)
        return redis.Redis(connection_pool=held)

    def _connected(self, connection: redis.connection.AbstractConnection) -> None:
        """Set up a new connection as redis-py would (AUTH, HELLO, SELECT), and count it."""
        if self._handshake is None:
            connection.on_connect()
        else:
            self._handshake(connection)
        self._counted(connection)

    def _counted(self, connection: redis.connection.AbstractConnection) -> None:
        self._connections += 1

    def mark(self) -> int:
        """Where a step starts: pass it to `confirm` once the step's writes are sent."""
        if self.min_replicas and self._connections == 0:
            # Connected before the step (to every primary of a Cluster), so that a first connection is not
            # taken for a replaced one.
            client = self.client
            if isinstance(client, DeferredCluster):
                client.ping(target_nodes=client.cluster.PRIMARIES)
            else:
                client.ping()
        return self._connections

    def confirm(self, since: int) -> None:
        """Return once `min_replicas` replicas hold every write sent through `client` (since `mark` gave
        `since`); raise ReplicasUnconfirmed when they do not in time, or when the connection changed."""
        if not self.min_replicas:
            return
        client = self.client
        try:
            if isinstance(client, DeferredCluster):
                # Each primary's own connection: it holds every write of the step to that primary's slots.
                replicas = min(self._wait(node.redis_connection) for node in client.cluster.get_primaries()
                               if node.redis_connection is not None)
            else:
                replicas = self._wait(client)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # The connection that wrote is gone, and what it wrote may be gone with its server.
            raise ReplicasUnconfirmed(f"the store did not answer the confirmation ({exc}); writing the step again",
                                      lost=True) from exc
        if self._connections != since:
            raise ReplicasUnconfirmed("the store connection was replaced while a step was written; writing it again",
                                      lost=True)
        if replicas < self.min_replicas:
            raise ReplicasUnconfirmed(f"replicas did not confirm: {replicas} of the {self.min_replicas} required "
                                      f"(PUSHSYNC_STORE_MIN_REPLICAS) within {CONFIRM_MILLISECONDS} ms", lost=False)

    def _wait(self, server: redis.Redis) -> int:
        """Replicas of `server` that hold every write its connection sent, waiting up to CONFIRM_MILLISECONDS."""
        local = _waitaof_local(server)
        if local is not None:
            return int(server.waitaof(local, self.min_replicas, CONFIRM_MILLISECONDS)[1])
        return int(server.wait(self.min_replicas, CONFIRM_MILLISECONDS))
