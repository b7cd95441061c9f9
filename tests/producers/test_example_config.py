"""`pushsync webhook` on the shipped example configuration, as a real process: it loads every
hook of deploy/pushsync-webhooks.toml and says which, takes a signed hook, and its /healthz
answers for the broker too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.producers.conftest import POLL_SECONDS, SERVER_START_SECONDS
from tests.producers.test_webhook import post_generic
from worker.store.embedded import free_port

pytestmark = pytest.mark.process

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "pushsync-webhooks.toml"
SECRETS = {"BLOG_SIGNING_SECRET": "b" * 64, "SHOP_WEBHOOK_TOKEN": "Bearer shop-token-value",
           "DIRECT_WEBHOOK_SECRET": "direct-secret-value"}


@pytest.fixture()
def start_example(tmp_path: Path, queue_name: str) -> Iterator[Callable[[str], tuple[str, Path]]]:
    """Start `pushsync webhook --config deploy/pushsync-webhooks.toml` publishing to a broker URL;
    gives its base URL and its log."""
    processes = []

    def start(broker_url: str) -> tuple[str, Path]:
        port, log = free_port(), tmp_path / f"receiver-{len(processes)}.log"
        with open(log, "wb") as output:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "worker", "webhook", "--config", str(EXAMPLE), "--port", str(port),
                 "--queue", queue_name],
                env={**os.environ, "BROKER_URL": broker_url, **SECRETS}, stdout=output, stderr=subprocess.STDOUT,
            ))
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + SERVER_START_SECONDS
        while "Uvicorn running" not in log.read_text():
            assert processes[-1].poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(POLL_SECONDS)
        return base, log

    yield start
    for process in processes:
        process.terminate()
        process.wait(SERVER_START_SECONDS)


def test_the_example_loads_every_hook_says_which_and_takes_a_signed_hook(start_example, redis_url, read_queue):
    base, log = start_example(redis_url)
    (line,) = [line for line in log.read_text().splitlines() if "hooks loaded:" in line]
    for hook in ("/hooks/blog (contentful to source myorg-blog)", "/hooks/shop (strapi to source myorg-shop)",
                 "/hooks/direct (generic to source myorg-source)"):
        assert hook in line
    assert not any(secret in log.read_text() for secret in SECRETS.values())
    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok", "broker": "ok"}

    body = json.dumps({"kind": "item.delete", "source": "myorg-source", "documentId": "https://example.com/1",
                       "version": 1}).encode()
    answer = post_generic(base, body, secret=SECRETS["DIRECT_WEBHOOK_SECRET"])
    assert answer.status_code == 202, answer.text
    events = [event for message in read_queue(redis_url) for event in message["body"]["events"]]
    assert [event["documentId"] for event in events] == ["https://example.com/1"]


def test_healthz_says_the_broker_does_not_answer(start_example):
    base, _ = start_example(f"redis://:secret-pass@127.0.0.1:{free_port()}/0")
    answer = requests.get(f"{base}/healthz", timeout=10)
    assert answer.status_code == 503
    assert answer.json() == {"status": "unhealthy", "broker": "does not answer"}
