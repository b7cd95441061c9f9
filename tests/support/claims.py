"""Machine-wide claims that keep concurrent test sessions apart: one lock file per shared thing.

A claim is an exclusive `flock` on a file of LOCK_DIR, held through an open descriptor for as long
as the session lives. The kernel drops it when the process ends, however it ends, so a crashed
session frees what it claimed. The file records the session that holds it, and keeps that record
after: a claimant that finds one knows a test session used the thing before (and that what is left
in it, say keys in a Redis database, is that session's rather than someone else's data).
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "pushsync-test-locks"
"""Shared by every user's sessions: sticky and world-writable, like /tmp itself."""
SHARED_DIR_MODE = 0o1777
LOCK_FILE_MODE = 0o666
"""Another user's session must be able to open (and so lock) a file this one created."""


class Claim:
    """One held lock file; `previous`: the record of the session that held it last ("" if none ever did)."""

    def __init__(self, path: Path, descriptor: int, previous: str) -> None:
        self.path = path
        self._descriptor = descriptor
        self.previous = previous

    def release(self, forget: bool = False) -> None:
        """Drop the lock, its record kept; forget: remove the file instead (for names never used again)."""
        if forget:
            self.path.unlink(missing_ok=True)
        os.close(self._descriptor)

    def give_back(self) -> None:
        """Drop the lock unused, the record as it was found."""
        os.ftruncate(self._descriptor, 0)
        os.pwrite(self._descriptor, self.previous.encode(), 0)
        os.close(self._descriptor)


def _lock_path(name: str) -> Path:
    try:
        LOCK_DIR.mkdir()
    except FileExistsError:
        pass
    else:
        os.chmod(LOCK_DIR, SHARED_DIR_MODE)  # the umask narrowed it
    # A symlink planted here would point root's writes (CI runs as root) at any file.
    if not stat.S_ISDIR(os.lstat(LOCK_DIR).st_mode):
        raise RuntimeError(f"{LOCK_DIR} is not a directory; remove it")
    return LOCK_DIR / (re.sub(r"[^A-Za-z0-9.-]", "_", name) + ".lock")


def _open(path: Path) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, LOCK_FILE_MODE)
    if os.fstat(descriptor).st_uid == os.geteuid():
        os.fchmod(descriptor, LOCK_FILE_MODE)  # the umask narrowed it
    return descriptor


def claim(name: str) -> Claim | None:
    """Claim `name` for this process until `release()` or its end; None when another process holds it."""
    path = _lock_path(name)
    descriptor = _open(path)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    previous = os.pread(descriptor, 4096, 0).decode(errors="replace")
    record = f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n"
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, record.encode(), 0)
    return Claim(path, descriptor, previous)


def holder(name: str) -> str:
    """Who holds `name`, as its file records it."""
    try:
        return _lock_path(name).read_text(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def held(name: str) -> Iterator[None]:
    """Hold `name` for the block, waiting while another process holds it."""
    descriptor = _open(_lock_path(name))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
