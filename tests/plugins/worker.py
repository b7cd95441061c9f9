"""Real pushsync worker and beat processes for integration tests.

The `workers` fixture starts `celery -A worker.app worker|beat` subprocesses (the same
`worker.children` the demo uses) with the environment a test gives, on this machine's network or
on a host of tests/plugins/hosts.py, and stops whatever a test left running. `kill()` on a handle is a SIGKILL of the whole process group.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hosts import Host
from worker import hooks
from worker.children import Child, celery

REPO = Path(__file__).resolve().parents[2]


class Launcher:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.children: list[Child] = []

    def start(self, role: str, env: dict[str, str], *extra: str, host: Host | None = None) -> Child:
        """host: run the process on that host (tests/support/hosts.py) instead of this one's network."""
        name = f"{role}-{len(self.children)}" + (f".{host.name}" if host else "")
        if role == "worker":
            extra = ("--hostname", f"{name}@%h", "--concurrency", "1", *extra)
        child = celery(role, env=env, log_path=self.directory / f"{name}.log", extra=extra, cwd=REPO,
                       runner=host.runner if host else ())
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.children:
            child.stop(timeout=10)


@pytest.fixture()
def workers(tmp_path: Path) -> Iterator[Launcher]:
    """Starts worker/beat processes for one test and stops them all afterwards."""
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture(autouse=True)
def no_hook_listeners() -> Iterator[None]:
    """Each test starts and ends with no listener on the stages' hooks. Importing `worker.app` (an
    in-process `pushsync status` does) subscribes the metrics as a worker's start does, and those
    count in the store of the environment's REDIS_URL: a later in-process push would fail on them."""
    for listener in hooks.subscribed():
        hooks.unsubscribe(listener)
    yield
    for listener in hooks.subscribed():
        hooks.unsubscribe(listener)
