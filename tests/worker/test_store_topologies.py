"""The whole pipeline on a real Redis Cluster and on a real Sentinel-watched primary.

Every Lua script and pipeline of ingestion, claims, releases, leases, attempts, high-water marks,
idle bursts, ranks, the beat and sweep locks and full runs runs here through the real worker code:
a call whose keys span two slots would fail with CROSSSLOT and the index would not converge.
"""

from __future__ import annotations

from tests.worker.e2e import run_pipeline


def test_pipeline_on_a_redis_cluster(workers, clean_emulator, redis_cluster, redis_broker_url):
    run_pipeline(workers, clean_emulator, redis_cluster.url, redis_broker_url)


def test_pipeline_on_a_sentinel_primary(workers, clean_emulator, redis_sentinel, redis_broker_url):
    run_pipeline(workers, clean_emulator, redis_sentinel.url, redis_broker_url)
