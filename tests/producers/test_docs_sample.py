"""docs/webhooks.md's signed-sample snippet, run as written against `pushsync webhook` started from the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.producers.conftest import POLL_SECONDS, SERVER_START_SECONDS
from worker.store.embedded import free_port

pytestmark = pytest.mark.process

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
PUSHSYNC = str(Path(sys.executable).with_name("pushsync"))
SECRET = "sample-secret-value"


def code_block(language: str, containing: str) -> str:
    """The first fenced block of `language` in the doc that contains `containing`."""
    for block in re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S):
        if containing in block:
            return block
    raise AssertionError(f"docs/webhooks.md has no {language} block containing {containing!r}")


@pytest.fixture()
def webhook_process(tmp_path: Path, redis_url: str, queue_name: str) -> Iterator[str]:
    """`pushsync webhook` as a real process with one generic hook `direct`; yields its base URL."""
    config = tmp_path / "hooks.toml"
    config.write_text('[sources.direct]\nadapter = "generic"\nsecret_env = "DIRECT_SECRET"\nsource_id = "myorg-source"\n')
    port = free_port()
    process = subprocess.Popen(
        [PUSHSYNC, "webhook", "--config", str(config), "--port", str(port), "--queue", queue_name],
        env={**os.environ, "BROKER_URL": redis_url, "DIRECT_SECRET": SECRET},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        try:
            requests.get(f"{base}/healthz", timeout=1).raise_for_status()
            break
        except requests.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, "pushsync webhook did not start"
            time.sleep(POLL_SECONDS)
    yield base
    process.terminate()
    process.wait(SERVER_START_SECONDS)


def test_the_documented_snippet_publishes_the_documented_sample(
    webhook_process: str, tmp_path: Path, redis_url: str, read_queue: Callable[[str], list[dict[str, Any]]],
) -> None:
    sample = code_block("json", '"documentId"')
    (tmp_path / "sample.json").write_text(sample)
    done = subprocess.run(
        ["bash", "-euc", code_block("sh", "X-Pushsync-Signature")], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "SECRET": SECRET, "HOOK": f"{webhook_process}/hooks/direct"}, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    [message] = read_queue(redis_url)
    [event] = message["body"]["events"]
    assert answer == {"published": 1, "eventIds": [event["eventId"]]}
    documented = json.loads(sample)
    assert {key: event[key] for key in documented} == documented
