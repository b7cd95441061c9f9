"""End-to-end throughput against the number of worker hosts: 1, 2, 3, ... hosts sharing one store.

    sudo .venv/bin/python bench/bench_hosts.py [--events N] [--sources N] [--hosts N]

Each host is a network namespace of its own on a private subnet (tests/support/hosts.py, the test
suite's hosts), running one `celery worker` of one pool process; a private embedded Redis (store and
broker) and the emulator listen on the subnet's bridge address, beat runs beside them. For each host
count in turn, from one up, the same workload (workload.py: hot items updated repeatedly, some
deleted) is published with `producers.Publisher` as fast as it goes, timed from the first publish
to the acceptance of the last batch, once the index holds exactly the last-write-wins state (checked
item by item). The store and the emulator are emptied between the runs. The one-host run is the
baseline: every other run prints its ratio to it.

Every host runs on this machine's cores: on a machine of two, a second and third host add processes,
not cores, so the ratios show whether hosts share one store correctly and where the bottleneck is
(the store, the emulator, the publisher and the workers all take the same cores), not how a cluster of
machines scales. Needs root (network namespaces). Figures are written to bench/results/hosts.json.
Not a test.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import click
import redis
from expectation import check, last_changes, settled
from results import invocation, write_result
from stack import BROKER_DB, STORE_DB, Stack, batch_calls, wait_until
from workload import URL_ROOT, Workload, publish

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the hosts are the test suite's own
from tests.support.hosts import Network, unavailable  # noqa: E402

EVENTS = 100_000
SOURCES = 20
HOSTS = 3
SEED = 11
WAIT_SECONDS = 300
SETTINGS = {"PUSHSYNC_WINDOW_SECONDS": "1", "PUSHSYNC_SWEEP_SECONDS": "0.5"}
"""A short window, so that one window's wait weighs little against the run."""


def run(stack: Stack, network: Network, hosts: int, events: int, sources: int) -> dict[str, float]:
    """One run on `hosts` hosts: its figures (and the addresses batches came from, checked to be the hosts')."""
    made = [network.add_host() for _ in range(hosts)]
    try:
        for host in made:
            stack.start_worker(concurrency=1, runner=host.runner)
        stack.start_beat()
        workload = Workload(events, sources, name=f"hosts{hosts}", seed=SEED)
        expected = workload.expected()
        last = last_changes(workload)
        started, published = publish(stack.broker_url, workload)
        wait_until(lambda: settled(stack.emulator, expected, last), WAIT_SECONDS, "the index settled", stack.directory)
        checked = check(stack.emulator, expected, timed_prefix=URL_ROOT)
        if checked.wrong:
            raise RuntimeError(f"{checked.wrong} item(s) differ from last-write-wins with {hosts} host(s); "
                               f"logs in {stack.directory}")
        accepted = batch_calls(stack.emulator.requests())
        finished = max(entry["time"] + entry["durationMs"] / 1000 for entry in accepted)
        pushers = {entry["client"] for entry in accepted}
        if pushers != {host.address for host in made}:
            raise RuntimeError(f"batches came from {sorted(pushers)}, not from each of the {hosts} host(s)")
        seconds = finished - started
        return {"seconds": seconds, "events_per_second": events / seconds, "publish_seconds": published - started,
                "batches": len(accepted), "p99_latency_seconds": _p99(checked.latencies)}
    finally:
        stack.stop_workers()
        for host in made:
            network.remove_host(host)
        stack.emulator.reset()
        for db in (STORE_DB, BROKER_DB):
            redis.Redis(stack.address, stack.redis.port, db=db).flushdb()


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else (values[0] if values else 0.0)


@click.command()
@click.option("--events", default=EVENTS, show_default=True, help="Events published in each run.")
@click.option("--sources", default=SOURCES, show_default=True, help="Push sources they spread over.")
@click.option("--hosts", "most", default=HOSTS, show_default=True, help="The largest host count (runs 1 to it).")
def main(events: int, sources: int, most: int) -> None:
    reason = unavailable()
    if reason is not None:
        raise click.ClickException(f"worker hosts cannot be made here: {reason}")
    network = Network()
    figures: dict[str, float] = {"events": events, "sources": sources, "cores": os.cpu_count() or 1}
    try:
        with tempfile.TemporaryDirectory(prefix="pushsync-bench-hosts-") as scratch:
            source_ids = Workload(events, sources, name="hosts", seed=SEED).source_ids
            with Stack(Path(scratch), source_ids, env=SETTINGS, address=network.address) as stack:
                for hosts in range(1, most + 1):
                    measured = run(stack, network, hosts, events, sources)
                    figures |= {f"hosts{hosts}_{name}": value for name, value in measured.items()}
                    ratio = measured["events_per_second"] / figures["hosts1_events_per_second"]
                    figures[f"hosts{hosts}_ratio"] = ratio
                    print(f"{hosts} host(s): {events:,} events in {measured['seconds']:.1f}s = "
                          f"{measured['events_per_second']:,.0f} events/s end to end, {measured['batches']} batches "
                          f"(publishing took {measured['publish_seconds']:.1f}s), p99 publish-to-accepted "
                          f"{measured['p99_latency_seconds']:.1f}s; {ratio:.2f}x the 1-host baseline",
                          flush=True)
    finally:
        network.close()
    write_result("hosts", "Throughput against worker hosts", invocation(), figures, [], [
        "Each host is a network namespace with one worker process of one pool process, against one private "
        "Redis (store and broker) and the emulator on the hosts' bridge; the 1-host run is the baseline measured "
        "in the same run. Throughput is from the first publish to the acceptance of the last batch, with the "
        "index checked item by item against last-write-wins and batches seen coming from every host.",
        f"All hosts share this machine's {os.cpu_count()} cores with the store, the emulator and the publisher: "
        "more hosts add processes, not cores, so a ratio near 1 says the shared parts (or the cores) are the "
        "bottleneck, not that more machines would not help.",
    ])


if __name__ == "__main__":
    main()
