"""Child processes (worker, beat, emulator) that the demo and the tests start and stop.

Each child runs in its own process group with its output in a log file, so a stop (TERM, then
KILL after a grace period) or a crash-style kill reaches its pool children too.
"""

from __future__ import annotations

import ctypes
import functools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

from worker.settings import LOG_FORMAT_VARIABLE, LogFormat
from worker.store.embedded import LOOPBACK

START_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1
CELERY_READY_MARKERS = {"worker": "ready.", "beat": "beat: Starting..."}
NODE_NAME_PREFIX = "pushsync"
NODE_SUFFIX_BYTES = 4
"""Random bytes (8 hex digits) that tell the default node names of the workers of one host apart."""
HOSTNAME_OPTIONS = ("-n", "--hostname")
"""How Celery options name the node: `-n NAME`, `-nNAME`, `--hostname NAME`, `--hostname=NAME`."""


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when its parent dies."""
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _terminate_with(parent: int) -> None:
    """In the child, before exec: SIGTERM when `parent` dies (and at once if it already did)."""
    assert _LIBC is not None
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class Child:
    """One child process with its output in `log_path`."""

    def __init__(self, name: str, command: Sequence[str], *, env: dict[str, str], log_path: Path,
                 cwd: Path | None = None, die_with_parent: bool = False) -> None:
        """
        name: how messages refer to the child.
        command: the program and its arguments.
        env: variables added to this process's environment for the child.
        log_path: where the child's standard output and error go.
        cwd: the child's working directory.
        die_with_parent: the child gets SIGTERM when this process dies, however it dies (Linux's
            parent-death signal); only for a single-threaded parent, as the hook runs between fork and exec.
        """
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            list(command), cwd=cwd, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=functools.partial(_terminate_with, os.getpid()) if die_with_parent and _LIBC else None,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT_SECONDS) -> "Child":
        """Poll `ready` until it is true; raise with the log's tail if the child dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return self
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.popen.returncode}:\n{self.log()[-4000:]}")
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log()[-4000:]}")

    def wait_for_log(self, marker: str, timeout: float = START_TIMEOUT_SECONDS) -> "Child":
        return self.wait_until(lambda: marker in self.log(), timeout)

    def kill(self) -> None:
        """SIGKILL the child and everything in its group at once, as a crash would."""
        self._signal(signal.SIGKILL)
        self.popen.wait()
        self._log.close()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a warm shutdown for Celery), then SIGKILL after `timeout` seconds."""
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()

    def _signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signum)
            except ProcessLookupError:
                pass


def celery_command(role: str, extra: Sequence[str] = (), *, json_logs: bool = False) -> list[str]:
    """The command line of a pushsync Celery `worker` or `beat`.

    extra: more Celery options.
    json_logs: the process logs JSON lines, so Celery's text banner is left out (`--quiet`).

    A worker gets a node name of its own (`default_node_name`) unless `extra` names one: Celery's
    default, `celery@HOST`, is the same for every worker of a host, and on RabbitMQ a second one
    then cannot declare its remote-control queue and exits."""
    if role == "worker" and not _names_node(extra):
        extra = ("--hostname", default_node_name(), *extra)
    quiet = ["--quiet"] if json_logs else []
    return [sys.executable, "-m", "celery", "-A", "worker.app", *quiet, role, "--loglevel", "INFO", *extra]


def default_node_name() -> str:
    """`pushsync-<8 hex digits>@%h` (Celery expands %h to the host name), new for every start."""
    return f"{NODE_NAME_PREFIX}-{secrets.token_hex(NODE_SUFFIX_BYTES)}@%h"


def _names_node(args: Sequence[str]) -> bool:
    """Whether Celery options `args` set the node name."""
    return any(arg.startswith(HOSTNAME_OPTIONS) for arg in args)


def celery(role: str, *, env: dict[str, str], log_path: Path, extra: Sequence[str] = (), cwd: Path | None = None,
           die_with_parent: bool = False, runner: Sequence[str] = ()) -> Child:
    """Start a pushsync Celery `worker` or `beat` and wait until it is ready (`die_with_parent`: see `Child`).

    runner: a command that runs the process for us, e.g. `ip netns exec NAME` (it must exec it, so that
        the child is the process itself and a stop reaches it)."""
    command = [*runner, *celery_command(role, extra, json_logs=env.get(LOG_FORMAT_VARIABLE) == LogFormat.JSON.value)]
    child = Child(f"celery {role}", command, env=env, log_path=log_path, cwd=cwd, die_with_parent=die_with_parent)
    try:
        return child.wait_for_log(CELERY_READY_MARKERS[role])
    except BaseException:
        child.stop(timeout=5)
        raise


def emulator(port: int, *, api_key: str, log_path: Path, args: Sequence[str] = (), die_with_parent: bool = False,
             host: str = LOOPBACK) -> Child:
    """Start the Push API emulator on `host`'s `port` (default: loopback) with `api_key` and wait until it answers."""
    url = f"http://{host}:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/_emulator/health", timeout=1).ok
        except requests.RequestException:
            return False

    child = Child("emulator", [sys.executable, "-m", "emulator", "--host", host, "--port", str(port), *args],
                  env={"PUSHSYNC_EMULATOR_API_KEY": api_key}, log_path=log_path, die_with_parent=die_with_parent)
    try:
        return child.wait_until(up)
    except BaseException:
        child.stop(timeout=5)
        raise
