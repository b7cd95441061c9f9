"""Real pushsync worker and beat processes for integration tests.

`start_worker(env)` launches `celery -A worker.app worker` as a subprocess with the given
environment (REDIS_URL, BROKER_URL, COVEO_* ...) and waits until it is consuming;
`start_beat(env)` does the same for the single beat. Each handle can `stop()` (TERM, then
wait) or `kill()` (SIGKILL, the whole process group, like a crashed machine). The `workers`
fixture stops whatever a test left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

READY_MARKERS = {"worker": "ready.", "beat": "beat: Starting..."}
START_TIMEOUT_SECONDS = 60
REPO = Path(__file__).resolve().parents[2]


class Process:
    """One worker or beat subprocess, in its own process group, logging to a file."""

    def __init__(self, role: str, env: dict[str, str], log_path: Path, extra: list[str]) -> None:
        self.role = role
        self.log_path = log_path
        command = [sys.executable, "-m", "celery", "-A", "worker.app", role, "--loglevel", "INFO", *extra]
        if role == "beat":
            command += ["--schedule", str(log_path.with_suffix(".schedule"))]
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> "Process":
        marker = READY_MARKERS[self.role]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log():
                return self
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.role} exited with {self.popen.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.role} not ready after {timeout}s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the process and its pool children at once, as a crash would."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._log.close()

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown: SIGTERM, then SIGKILL if it does not end in `timeout` seconds."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class Launcher:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[Process] = []

    def start(self, role: str, env: dict[str, str], *extra: str, wait: bool = True) -> Process:
        name = f"{role}-{len(self.processes)}"
        if role == "worker":
            extra = ("--hostname", f"{name}@%h", "--concurrency", "1", *extra)
        process = Process(role, env, self.directory / f"{name}.log", list(extra))
        self.processes.append(process)
        return process.wait_ready() if wait else process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop(timeout=10)


@pytest.fixture()
def workers(tmp_path: Path) -> Iterator[Launcher]:
    """Starts worker/beat processes for one test and stops them all afterwards."""
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.stop_all()
