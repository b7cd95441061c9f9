"""Workers started by `pushsync worker` with no options get node names of their own, so a host
runs as many as it likes; on RabbitMQ a shared name crashed every worker but the first
(ResourceLocked on its remote-control queue `celery@HOST.celery.pidbox`)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from kombu import Connection

from producers import broker
from tests.worker.e2e import wait_for
from tests.worker.observe.test_status import pushsync, status
from worker.children import CELERY_READY_MARKERS, Child
from worker.commands.services import HEALTHY

REPO = Path(__file__).resolve().parents[3]
WORKERS = 2


def consumers(broker_url: str, queue: str) -> int:
    """How many consumers `queue` has (a passive declare changes nothing)."""
    with Connection(broker_url) as connection:
        return connection.channel().queue_declare(queue, passive=True).consumer_count


def worker_names(env: dict[str, str]) -> list[str] | None:
    """The names of the workers answering `pushsync status`, once all of them answer."""
    names = sorted(worker["name"] for worker in status(env)["workers"])
    return names if len(names) == WORKERS else None


def test_two_pushsync_workers_on_one_host_both_run_on_rabbitmq(tmp_path, redis_client, redis_url, rabbitmq_url):
    env = {"REDIS_URL": redis_url, "BROKER_URL": rabbitmq_url}
    started = []
    try:
        for n in range(WORKERS):
            child = Child(f"pushsync worker {n}", [sys.executable, "-m", "worker", "worker"], env=env,
                          log_path=tmp_path / f"worker-{n}.log", cwd=REPO)
            started.append(child)
            child.wait_for_log(CELERY_READY_MARKERS["worker"])
        pattern = f"pushsync-*@{socket.gethostname()}"
        names = wait_for(lambda: worker_names(env), 30, what="both workers answering")
        assert len(set(names)) == WORKERS and all(name.startswith("pushsync-") for name in names), names
        for name in [*names, pattern]:
            checked = pushsync(env, "health", "--worker", name)
            assert checked.returncode == HEALTHY, checked.stderr
        # Both consume: change events (ingestion) and tasks.
        wait_for(lambda: consumers(rabbitmq_url, broker.EVENTS_QUEUE) == WORKERS, 30, what="two event consumers")
        wait_for(lambda: consumers(rabbitmq_url, broker.TASKS_QUEUE) == WORKERS, 30, what="two task consumers")
        assert all(child.popen.poll() is None for child in started)
    finally:
        for child in started:
            child.stop(timeout=10)
