"""Real Redis topologies, started once per test module (tests/support/topologies.py says how).

`redis_cluster`: a 3-primary Cluster with a replica each; `redis_sentinel`: a primary, a replica and
three Sentinels. Both are stopped at the module's end and emptied before each test that uses them;
a test that kills a node may restart it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.topologies import RedisClusterTopology, SentinelTopology, Tls


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterTopology]:
    """A running Redis Cluster of this module: `.url` is its `redis+cluster://` store URL."""
    cluster = RedisClusterTopology(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture()
def cluster_store(redis_cluster: RedisClusterTopology) -> RedisClusterTopology:
    """The module's Redis Cluster, healthy and emptied for this test."""
    redis_cluster.wait_healthy()
    redis_cluster.flush()
    return redis_cluster


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelTopology]:
    """A running Sentinel-watched primary and replica of this module: `.url` is its `redis+sentinel://` store URL."""
    sentinel = SentinelTopology(tmp_path_factory.mktemp("redis-sentinel"))
    yield sentinel
    sentinel.stop()


@pytest.fixture()
def sentinel_store(redis_sentinel: SentinelTopology) -> SentinelTopology:
    """The module's Sentinel-watched primary, emptied for this test."""
    redis_sentinel.flush()
    return redis_sentinel


@pytest.fixture(scope="module")
def redis_cluster_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterTopology]:
    """A running Redis Cluster of this module that speaks TLS only: `.url` is its `rediss+cluster://` store URL."""
    directory = tmp_path_factory.mktemp("redis-cluster-tls")
    cluster = RedisClusterTopology(directory, tls=Tls(directory / "tls"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def redis_sentinel_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelTopology]:
    """A Sentinel-watched primary and replica of this module that speak TLS only, the Sentinels too: `.url` is its
    `rediss+sentinel://` store URL."""
    directory = tmp_path_factory.mktemp("redis-sentinel-tls")
    sentinel = SentinelTopology(directory, tls=Tls(directory / "tls"))
    yield sentinel
    sentinel.stop()
