"""Workers on several hosts (network namespaces, tests/plugins/hosts.py) against one store, broker and
emulator: they share the work into an exact index; a host cut off the network past its lease while the
emulator holds its upload is fenced (invariant 10); and a batch call a host sent into a partition (it
heard the service but was not heard) is given up instead of landing when the partition heals."""

from __future__ import annotations

import re
from typing import Any

import pytest

from producers import Publisher
from tests.worker.e2e import converge, history, index, pipeline_env, wait_for

SOURCES = [f"hosts-{n}" for n in range(6)]
HOSTS = 3
BATCH_LATENCY_SECONDS = 0.5
"""Keeps each batch call busy a moment, so that while one host pushes, the next batch goes to another."""
BATCH_PATH_SUFFIX = "/documents/batch"
UPLOAD_PATH_PREFIX = "/_blob/"
FILES_PATH_SUFFIX = "/files"

PARTITIONED = "partitioned"
ITEMS = 5
UPLOAD_LATENCY_SECONDS = 1.5
"""Holds the first upload in the emulator long enough to cut its sender's link in the middle of it, and
short of the lease: what the emulator holds when the link goes is answered before a successor can exist."""
LEASE_SECONDS = 2
REAP_AFTER_SECONDS = 3
CLAIM_SECONDS = 2
"""Events a cut host had read when its link went down are taken over this soon (the default is 30 s)."""
LOST_LINE = "stopping this push without another call"
PUSH_ENDED = re.compile(r"Task pushsync\.push_batch\[[^]]+\] (succeeded|raised)")


def batch_accepts(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if e["method"] == "PUT" and e["path"].endswith(BATCH_PATH_SUFFIX) and e["status"] == 202]


def landed(entry: dict[str, Any]) -> float:
    """When the emulator answered the request (its log's time is when the request arrived)."""
    return entry["time"] + entry["durationMs"] / 1000


def test_workers_on_three_hosts_share_the_work_and_the_index_is_exact(hosts, workers, network_store,
                                                                      network_emulator):
    emulator = network_emulator
    for source in SOURCES:
        emulator.create_source(source)
    emulator.add_fault(method="PUT", path=f"*{BATCH_PATH_SUFFIX}", latency=BATCH_LATENCY_SECONDS)
    env = pipeline_env(network_store.url, network_store.broker_url, emulator)
    started = [hosts.worker(env) for _ in range(HOSTS)]
    for _, worker in started:
        # Up before the work comes: a sweep spreads its pushes over the pools of the workers running then.
        worker.wait_for_log("ready.")
    workers.start("beat", env)
    events = history(SOURCES, items=20, seed=17)
    with Publisher(network_store.broker_url, events_per_message=10) as publisher:
        publisher.publish_many(events)
    converge(emulator, events, SOURCES)
    pushed_from = {entry["client"] for entry in batch_accepts(emulator.requests())}
    assert pushed_from == {host.address for host, _ in started}, "every host pushed batches, and only the hosts did"


def versions(version: int) -> list[dict]:
    return [{"kind": "item.upsert", "source": PARTITIONED, "version": version,
             "documentId": f"https://example.com/{n}", "item": {"data": f"item {n} v{version}"}} for n in range(ITEMS)]


def contents(version: int) -> dict[str, str]:
    return {event["documentId"]: event["item"]["data"] for event in versions(version)}


def two_hosts_one_holding_an_upload(hosts, workers, network_store, emulator, *, lease: float, reap_after: float,
                                    upload_latency: float):
    """Two worker hosts and beat on the shared store; the first window of PARTITIONED published and its
    upload held by the emulator for `upload_latency` seconds. Returns (host holding it, its worker, the other host)."""
    emulator.create_source(PARTITIONED)
    emulator.add_fault(method="PUT", path=f"{UPLOAD_PATH_PREFIX}*", latency=upload_latency, times=1)
    env = pipeline_env(network_store.url, network_store.broker_url, emulator,
                       PUSHSYNC_LEASE_SECONDS=str(lease), PUSHSYNC_REAP_AFTER_SECONDS=str(reap_after),
                       PUSHSYNC_EVENTS_CLAIM_SECONDS=str(CLAIM_SECONDS))
    workers.start("beat", env)
    by_address = {}
    for _ in range(2):
        host, child = hosts.worker(env)
        by_address[host.address] = (host, child)
    with Publisher(network_store.broker_url) as publisher:
        publisher.publish_many(versions(1))
    wait_for(lambda: not emulator.faults(), 30, interval=0.02, what="a host's upload held by the emulator")
    created = [e for e in emulator.requests() if e["path"].endswith(FILES_PATH_SUFFIX)]
    (holder, holder_worker), = [by_address[created[0]["client"]]]
    (other, _), = [pair for address, pair in by_address.items() if address != holder.address]
    return holder, holder_worker, other


@pytest.mark.slow
def test_a_host_cut_off_past_its_lease_lands_nothing_after_its_successor(hosts, workers, network_store,
                                                                         network_emulator):
    emulator = network_emulator
    cut, cut_worker, successor = two_hosts_one_holding_an_upload(
        hosts, workers, network_store, emulator, lease=LEASE_SECONDS, reap_after=REAP_AFTER_SECONDS,
        upload_latency=UPLOAD_LATENCY_SECONDS)
    cut.cut()
    try:
        assert network_store.client.keys("pushsync:*:lease"), "the cut host holds the batch's lease mid-upload"
        wait_for(lambda: index(emulator, PARTITIONED) == contents(1), 30, what="the batch taken over and pushed")
        with Publisher(network_store.broker_url) as publisher:
            publisher.publish_many(versions(2))
        wait_for(lambda: index(emulator, PARTITIONED) == contents(2), 30, what="the next window pushed")
    finally:
        cut.restore()
    cut_worker.wait_until(lambda: PUSH_ENDED.search(cut_worker.log()), timeout=60)
    emulator.wait_idle()
    assert index(emulator, PARTITIONED) == contents(2), "no older version came back with the cut host"
    log = emulator.requests()
    cut_files = {e["path"].removeprefix(UPLOAD_PATH_PREFIX) for e in log
                 if e["client"] == cut.address and e["path"].startswith(UPLOAD_PATH_PREFIX)}
    assert cut_files, "the cut host's held upload is in the log"
    successor_accepts = [e for e in batch_accepts(log) if e["client"] == successor.address]
    assert successor_accepts, "the successor pushed the batch"
    taken_over_at = min(landed(e) for e in successor_accepts)
    late = [e for e in log if e["client"] == cut.address and landed(e) > taken_over_at]
    assert late == [], "the cut host called the service after its successor had taken the batch over"
    assert not [e for e in batch_accepts(log) if any(f"fileId={file_id}" in e["query"] for file_id in cut_files)]
    assert LOST_LINE in cut_worker.log()


MUTED_LEASE_SECONDS = 4
MUTED_REAP_AFTER_SECONDS = 5
MUTED_UPLOAD_LATENCY_SECONDS = 1.0
"""Short of half the lease: the upload's answer comes while the host can still vouch for its lease, so
the batch call that follows passes the lease check and is sent into the partition."""


@pytest.mark.slow
def test_a_batch_call_sent_into_a_partition_does_not_land_when_it_heals(hosts, workers, network_store,
                                                                        network_emulator):
    emulator = network_emulator
    muted, muted_worker, successor = two_hosts_one_holding_an_upload(
        hosts, workers, network_store, emulator, lease=MUTED_LEASE_SECONDS, reap_after=MUTED_REAP_AFTER_SECONDS,
        upload_latency=MUTED_UPLOAD_LATENCY_SECONDS)
    muted.mute()
    try:
        wait_for(lambda: index(emulator, PARTITIONED) == contents(1), 30, what="the batch taken over and pushed")
        with Publisher(network_store.broker_url) as publisher:
            publisher.publish_many(versions(2))
        wait_for(lambda: index(emulator, PARTITIONED) == contents(2), 30, what="the next window pushed")
    finally:
        muted.unmute()
    muted_worker.wait_until(lambda: PUSH_ENDED.search(muted_worker.log()), timeout=60)
    emulator.wait_idle()
    assert index(emulator, PARTITIONED) == contents(2), "no older version came back with the muted host"
    log = emulator.requests()
    taken_over_at = min(landed(e) for e in batch_accepts(log) if e["client"] == successor.address)
    late = [e for e in batch_accepts(log) if e["client"] == muted.address and landed(e) > taken_over_at]
    assert late == [], "the batch call the muted host sent into the partition landed after its successor's"
