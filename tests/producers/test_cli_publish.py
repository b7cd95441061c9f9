"""`pushsync publish` as a real process against real brokers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from producers import Publisher
from producers.cli import EXIT_BROKER, EXIT_INVALID
from producers.events import parse_event
from producers.progress import Progress
from tests.producers.conftest import item_delete, item_upsert

PUSHSYNC = str(Path(sys.executable).with_name("pushsync"))
Reader = Callable[[str], list[dict[str, Any]]]


def run_publish(*args: str, broker_url: str | None, queue_name: str, stdin: bytes | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("BROKER_URL", "REDIS_URL")}
    if broker_url:
        env["BROKER_URL"] = broker_url
    return subprocess.run(
        [PUSHSYNC, "publish", "--queue", queue_name, *args], input=stdin.decode() if stdin is not None else None,
        capture_output=True, text=True, env=env, cwd=cwd, timeout=60,
    )


def ndjson(*events: Any) -> bytes:
    return b"".join((event if isinstance(event, bytes) else json.dumps(event).encode()) + b"\n" for event in events)


@pytest.mark.process
def test_a_file_is_published_in_batches_and_read_back_exactly(
    broker_url: str, queue_name: str, read_queue: Reader, tmp_path: Path,
) -> None:
    events = [item_upsert(n) for n in range(5)] + [item_delete(9)]
    source = tmp_path / "events.ndjson"
    source.write_bytes(ndjson(*events) + b"\n")  # a trailing blank line is not an event
    done = run_publish(str(source), "--events-per-message", "4", broker_url=broker_url, queue_name=queue_name)
    assert done.returncode == 0, done.stderr
    assert "published 6 event(s) in 2 message(s)" in done.stdout
    messages = read_queue(broker_url)
    assert [event for message in messages for event in message["body"]["events"]] == [
        json.loads(parse_event(event).encoded) for event in events
    ]


@pytest.mark.process
def test_any_invalid_line_publishes_nothing_and_names_each_line(
    redis_url: str, queue_name: str, read_queue: Reader, tmp_path: Path,
) -> None:
    source = tmp_path / "events.ndjson"
    source.write_bytes(ndjson(item_upsert(1), b"\xff\xfe", b"[1]", item_upsert(2, version=1.5), item_upsert(3)))
    done = run_publish(str(source), broker_url=redis_url, queue_name=queue_name)
    assert done.returncode == EXIT_INVALID
    assert "line 2: not UTF-8 text" in done.stderr
    assert "line 3: expected a JSON object (one event), got an array" in done.stderr
    assert "line 4: version: expected an integer, got 1.5" in done.stderr
    assert "nothing published: 3 invalid line(s)" in done.stderr
    assert read_queue(redis_url) == []


@pytest.mark.process
def test_skip_invalid_publishes_the_valid_lines_from_stdin_and_writes_the_others(
    redis_url: str, queue_name: str, read_queue: Reader, tmp_path: Path,
) -> None:
    missing_version = {key: value for key, value in item_upsert(2).items() if key != "version"}
    stdin = ndjson(item_upsert(1), missing_version, item_upsert(3))
    rejects = tmp_path / "rejects.ndjson"
    done = run_publish("-", "--skip-invalid", "--invalid-output", str(rejects), stdin=stdin,
                       broker_url=redis_url, queue_name=queue_name)
    assert done.returncode == EXIT_INVALID, done.stderr
    assert "published 2 event(s)" in done.stdout and "invalid: 1" in done.stdout
    [reject] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject["line"] == 2 and reject["reason"].startswith("version: required field is missing")
    assert json.loads(reject["text"]) == missing_version
    [message] = read_queue(redis_url)
    assert [event["documentId"] for event in message["body"]["events"]] == [
        "https://example.com/doc/1", "https://example.com/doc/3",
    ]


@pytest.mark.process
def test_a_missing_broker_url_is_a_clear_usage_error(queue_name: str, tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    source.write_bytes(ndjson(item_upsert(1)))
    done = run_publish(str(source), broker_url=None, queue_name=queue_name)
    assert done.returncode == 2
    assert "no broker given: pass --broker-url or set BROKER_URL (or REDIS_URL)" in done.stderr


@pytest.mark.process
def test_an_unreachable_broker_exits_3_and_says_where_to_resume(queue_name: str, tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    source.write_bytes(ndjson(item_upsert(1), item_upsert(2)))
    done = run_publish(str(source), broker_url="redis://127.0.0.1:1/0", queue_name=queue_name)
    assert done.returncode == EXIT_BROKER
    assert "2 event(s) not handed over to the broker" in done.stderr and "re-run from line 1" in done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_the_share_done_and_a_rate_on_a_terminal_only() -> None:
    ticks = iter([0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    terminal = _Terminal()
    progress = Progress(terminal, total_bytes=200, clock=lambda: next(ticks))
    progress.update(events=100, bytes_done=100)
    progress.close()
    assert "publishing [############------------]  50%  100 events  50 events/s" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")

    piped = io.StringIO()
    quiet = Progress(piped, total_bytes=200)
    quiet.update(events=1, bytes_done=10)
    quiet.close()
    assert piped.getvalue() == ""


@pytest.mark.process
def test_a_redis_cluster_given_as_the_broker_is_refused_in_one_line(queue_name: str) -> None:
    cluster = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
    done = run_publish("-", broker_url=cluster, queue_name=queue_name, stdin=ndjson(item_delete(1)))
    assert done.returncode == 2, done.stderr
    assert "a Redis Cluster cannot be the broker (kombu has no Cluster transport)" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(ValueError, match="a Redis Cluster cannot be the broker"):
        Publisher(cluster)
