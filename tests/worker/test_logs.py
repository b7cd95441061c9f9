"""Log lines as pushsync writes them: readable text, or JSON with every field, and the log context."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.logs import HANDLER_NAME, configure, log_context
from worker.settings import LogFormat, SettingsError, load_settings
from worker.store.embedded import free_port

log = logging.getLogger("pushsync.test")
TEXT_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}: (?P<level>[A-Z]+)/(?P<process>\w+)\] "
                       r"(?P<logger>[\w.]+)(?: \[(?P<context>[^\]]*)\])?: (?P<message>.*)$")

Logged = Callable[[LogFormat], Path]


@pytest.fixture()
def logged(tmp_path: Path) -> Iterator[Logged]:
    """Configure this process's logging into a file, as a pushsync process would; undone afterwards."""
    root = logging.getLogger()
    level = root.level

    def start(log_format: LogFormat) -> Path:
        path = tmp_path / f"pushsync-{log_format.value}.log"
        configure(log_format, handler=logging.FileHandler(path))
        return path

    yield start
    for handler in [h for h in root.handlers if h.name == HANDLER_NAME]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_text_lines_are_readable_and_show_the_log_context(logged: Logged) -> None:
    path = logged(LogFormat.TEXT)
    log.info("no context here")
    with log_context(source="kb", batchId="b-1"):
        log.info("file container %s accepted: %d items", "f-1", 3, extra={"fileId": "f-1", "items": 3})
    first, second = [TEXT_LINE.match(line) for line in path.read_text().splitlines()]
    assert first and first["level"] == "INFO" and first["logger"] == "pushsync.test"
    assert first["context"] is None and first["message"] == "no context here"
    assert second and second["context"] == "source=kb batchId=b-1"
    assert second["message"] == "file container f-1 accepted: 3 items"


def test_json_lines_carry_the_context_and_every_extra_field(logged: Logged) -> None:
    path = logged(LogFormat.JSON)
    with log_context(provider="ldap", batchId="b-2"):
        log.warning("accepted", extra={"fileId": "f-2", "members": 4, "bytes": 900, "fileIds": ["f-2"]})
        log.info("explicit fields win", extra={"batchId": "other"})
    accepted, explicit = json_lines(path)
    assert accepted["level"] == "WARNING" and accepted["logger"] == "pushsync.test" and accepted["process"]
    assert accepted["message"] == "accepted" and accepted["time"]
    assert {key: accepted[key] for key in ("provider", "batchId", "fileId", "members", "bytes", "fileIds")} == {
        "provider": "ldap", "batchId": "b-2", "fileId": "f-2", "members": 4, "bytes": 900, "fileIds": ["f-2"]}
    assert explicit["batchId"] == "other"


def test_json_lines_hold_the_traceback(logged: Logged) -> None:
    path = logged(LogFormat.JSON)
    try:
        raise ValueError("broken")
    except ValueError:
        log.exception("failed")
    (line,) = json_lines(path)
    assert line["message"] == "failed"
    assert "Traceback" in line["exception"] and "ValueError: broken" in line["exception"]


def test_configuring_again_replaces_the_handler(logged: Logged) -> None:
    logged(LogFormat.TEXT)
    path = logged(LogFormat.JSON)
    log.info("once")
    assert [line["message"] for line in json_lines(path)] == ["once"]
    assert len([h for h in logging.getLogger().handlers if h.name == HANDLER_NAME]) == 1


def test_the_log_format_setting_takes_any_case_and_names_itself_when_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHSYNC_LOG_FORMAT", "JSON")
    assert load_settings().log_format is LogFormat.JSON
    monkeypatch.setenv("PUSHSYNC_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="PUSHSYNC_LOG_FORMAT"):
        load_settings()


@pytest.mark.process
def test_the_emulator_logs_in_the_format_pushsync_was_given(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "emulator.log"
    with open(log_path, "wb") as log_file:
        emulator = subprocess.Popen([sys.executable, "-m", "worker", "--log-format", "json", "emulator", "--port",
                                     str(port)], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "pushsync emulator: http" not in log_path.read_text():
            assert emulator.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        warned: list[dict] = []
        while not warned:
            # uvicorn warns about a request that is not HTTP; its warning must come out as JSON too.
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                    connection.sendall(b"not http at all\r\n\r\n")
                    connection.recv(1024)
            except OSError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            lines = log_path.read_text().splitlines()
            warned = [json.loads(line) for line in lines if line.startswith("{") and "Invalid HTTP" in line]
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    assert warned[0]["level"] == "WARNING" and warned[0]["logger"].startswith("uvicorn")
    assert not [line for line in log_path.read_text().splitlines() if "Invalid HTTP" in line and line[0] != "{"]


@pytest.mark.process
@pytest.mark.parametrize("role, ready", [("worker", " ready."), ("beat", "beat: Starting")])
def test_a_worker_and_a_beat_in_json_mode_write_nothing_but_json_lines(tmp_path: Path, redis_url: str,
                                                                       redis_broker_url: str, role: str, ready: str):
    # Run as root here, Celery's worker warns through `warnings`; on Ctrl-C it prints notices from
    # its signal handler: every one of them must be a JSON line too, and the banner is left out.
    log_path = tmp_path / f"{role}.log"
    env = {**os.environ, "REDIS_URL": redis_url, "BROKER_URL": redis_broker_url}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "worker", "--log-format", "json", role],
                                   env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while ready not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    assert [line for line in lines if not line.startswith("{")] == []
    messages = [json.loads(line)["message"] for line in lines]
    if role == "worker":
        assert any("Warm shutdown" in message for message in messages), messages
