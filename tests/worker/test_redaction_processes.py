"""No secret in what real pushsync processes write, in text and in JSON.

A worker started as `pushsync --log-format FORMAT worker` pushes to three sources: one whose calls
are refused (401) and one whose calls fail (503, then 400: the batch is dead-lettered), each with
a message that echoes the key back, as a gateway might, and one that is pushed as usual. A webhook receiver started as `pushsync
--log-format FORMAT webhook` is sent its secret in the query string (uvicorn's access line holds
the whole path) with a bad signature. Each process's whole output and the dead-letter entries
are searched for the secrets, and the lines around them are checked to be there.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from pathlib import Path

import pytest
import requests

from producers import Publisher
from producers.webhook.signatures import PUSHSYNC_HEADER, pushsync_signature
from tests.worker.e2e import expected, history, index, pipeline_env, wait_for
from worker.children import Child
from worker.deadletter.operator import DeadLetterBrowser
from worker.push import pause
from worker.settings import LogFormat
from worker.store import keys
from worker.store.embedded import free_port

pytestmark = pytest.mark.process

FORMATS = [LogFormat.TEXT, LogFormat.JSON]
ECHOED = "echoed"
"""Its status calls go through a gateway that echoes the key in its error messages."""
REFUSED = "refused"
"""The service refuses the key for it (401), echoing it."""
ACCEPTED = "accepted"
"""Pushed as usual."""
TEXT_RECORD = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+: [A-Z]+/\w+(-\d+)?\] ")


def pushsync(log_format: LogFormat, *args: str) -> list[str]:
    return [sys.executable, "-m", "worker", "--log-format", log_format.value, *args]


def records(log: str, log_format: LogFormat) -> list[dict]:
    """The JSON log records of a process's output (Celery prints its banner as plain text)."""
    assert log_format is LogFormat.JSON
    assert not any(TEXT_RECORD.match(line) for line in log.splitlines()), "a text record in JSON output"
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("log_format", FORMATS, ids=[f.value for f in FORMATS])
def test_a_worker_logs_and_dead_letters_no_key(log_format, workers, clean_emulator, redis_client, redis_url,
                                              redis_broker_url, tmp_path: Path):
    emulator = clean_emulator
    key = emulator.api_key
    for source in (ECHOED, REFUSED, ACCEPTED):
        emulator.create_source(source)
    echoed_status = f"*/sources/{ECHOED}/status"
    emulator.add_fault(method="POST", path=echoed_status, status=503, message=f"upstream saw Bearer {key}", times=1)
    emulator.add_fault(method="POST", path=echoed_status, status=400, errorCode="INVALID_TOKEN",
                       message=f"gateway refused {key}", times=1)
    emulator.add_fault(method="POST", path=f"*/sources/{REFUSED}/status", status=401, errorCode="INVALID_TOKEN",
                       message=f"the key {key} is not recognized")
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_AUTH_PAUSE_SECONDS="600")
    worker = Child("pushsync worker", pushsync(log_format, "worker", "--hostname", "redaction@%h", "--concurrency", "1"),
                   env=env, log_path=tmp_path / "worker.log")
    try:
        worker.wait_for_log("ready.")
        beat = workers.start("beat", {**env, "PUSHSYNC_LOG_FORMAT": log_format.value})
        events = history([ECHOED, REFUSED, ACCEPTED], items=3, seed=7, deletes=1)
        with Publisher(redis_broker_url) as publisher:
            publisher.publish_many(events)
        letters = DeadLetterBrowser(redis_broker_url)
        wait_for(lambda: letters.depth() == 1, 60, what="the echoed source's batch dead-lettered")
        wait_for(lambda: pause.describe(redis_client, keys.Target(keys.SOURCE, REFUSED)), 60, what="the pause")
        wait_for(lambda: index(emulator, ACCEPTED) == expected(events, ACCEPTED), 60, what="the accepted index")
        worker.wait_for_log("closed with IDLE")
    finally:
        worker.stop()
    beat.stop()
    log = worker.log()

    assert key not in log and key not in beat.log()
    for message in ("upstream saw Bearer [redacted]", "gateway refused [redacted]", "the key [redacted] is not"):
        assert message in log
    (entry,) = letters.list()
    assert entry.error.message.startswith(f"set_source_status [{ECHOED}]: gateway refused [redacted]")
    assert key not in entry.to_json().decode()
    assert key not in json.dumps(pause.describe(redis_client, keys.Target(keys.SOURCE, REFUSED)))
    if log_format is LogFormat.TEXT:
        assert re.search(rf"worker\.push\.batch \[source={REFUSED} batchId=\w+\]: THE API KEY IS WRONG", log)
        assert re.search(rf"worker\.push\.batch \[source={ECHOED} batchId=\w+\]: dead-lettered \d+ event", log)
        assert re.search(rf"worker\.pushapi\.batches \[source={ACCEPTED} batchId=\w+\]: file container \S+ "
                         rf"accepted for {ACCEPTED}: items=\d+ (deletes=\d+ )?bytes=\d+", log)
        return
    assert any(line["message"].startswith("beat: Starting") for line in records(beat.log(), log_format))
    lines = records(log, log_format)
    refused = next(line for line in lines if line["message"].startswith("THE API KEY IS WRONG"))
    assert refused["level"] == "CRITICAL" and refused["source"] == REFUSED and refused["batchId"]
    assert (refused["status"], refused["error"]) == (401, "UnauthorizedError")
    dead = next(line for line in lines if line["message"].startswith("dead-lettered"))
    assert dead["source"] == ECHOED and dead["events"] >= 1 and dead["errorCode"] == "INVALID_TOKEN"
    retried = next(line for line in lines if line["message"].startswith("push api call failed"))
    assert retried["source"] == ECHOED and retried["status"] == 503 and retried["attempt"] == 1
    files = [line for line in lines if line["logger"] == "worker.pushapi.batches"]
    assert files and all(line["source"] == ACCEPTED and line["batchId"] and line["fileId"] and line["bytes"] > 0
                         and line.get("items", 0) + line.get("deletes", 0) > 0 for line in files)
    pushed = [line for line in lines if line["message"].startswith("batch pushed")]
    assert {file_id for line in pushed for file_id in line["fileIds"]} == {line["fileId"] for line in files}
    assert sum(line["pushed"] for line in pushed) == sum(line.get("items", 0) + line.get("deletes", 0) for line in files)
    idle = next(line for line in lines if line["message"].endswith("closed with IDLE"))
    assert idle["source"] == ACCEPTED and idle["status"] == "IDLE"


@pytest.mark.parametrize("log_format", FORMATS, ids=[f.value for f in FORMATS])
def test_a_webhook_receiver_logs_no_secret(log_format, redis_broker_url, tmp_path: Path):
    secret = f"hook-{secrets.token_urlsafe(18)}"
    config = tmp_path / "hooks.toml"
    config.write_text(f'[sources.direct]\nadapter = "generic"\nsecret = "{secret}"\nsource_id = "source-a"\n')
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    receiver = Child("pushsync webhook", pushsync(log_format, "webhook", "--config", str(config), "--port", str(port),
                                                  "--broker-url", redis_broker_url),
                     env={}, log_path=tmp_path / "webhook.log")
    try:
        receiver.wait_until(lambda: _answers(f"{url}/healthz"))
        body = b'{"kind": "item.delete", "source": "source-a", "documentId": "https://example.com/1", "version": 1}'
        forged = pushsync_signature("not-the-secret", body, int(time.time()))
        # A CMS configured to put the secret in the URL: the access line holds the whole path.
        answer = requests.post(f"{url}/hooks/direct?token={secret}", data=body, headers={PUSHSYNC_HEADER: forged, "Content-Type": "application/json"},
                               timeout=10)
        assert answer.status_code == 401
        receiver.wait_for_log("hook direct: 401")
        receiver.wait_for_log("/hooks/direct?token=")
    finally:
        receiver.stop()
    log = receiver.log()

    assert secret not in log
    assert "signature does not match the body" in log and "/hooks/direct?token=[redacted]" in log
    if log_format is LogFormat.JSON:
        access = next(line for line in records(log, log_format) if "/hooks/direct?token=" in line["message"])
        assert access["logger"] == "uvicorn.access" and access["message"].endswith("401")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
