"""Files and directories that only their owner can read, for everything pushsync writes that holds content.

Dead-letter exports, invalid-line reports, the emulator's blobs and the worker's metric values can
hold item content or secrets, and are often written under a shared directory such as /tmp. Whatever
the umask, what is created here is 0600 (files) or 0700 (directories), and nothing here follows a
symlink someone planted where pushsync writes:

- `replacing(path)` writes a new file beside `path` (O_EXCL, O_NOFOLLOW, 0600) and renames it over
  `path` once complete: a symlink at `path` is replaced, never followed, and a file someone else
  owns there is never written into;
- `private_directory(path)` makes `path` (and missing parents) 0700, or accepts it only if it is a
  real directory of this user that nobody else may write;
- `check_private_directory(path)` is that acceptance alone.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
"""Permission bits that would let someone else add, replace or remove entries of a directory."""
ROOT_UID = 0
"""The one other owner a private directory's parents may have: the system's own (/, /tmp, /home)."""
TEMP_SUFFIX = ".partial"
"""What a file being written by `replacing` is called beside its final name, until it is complete."""


class NotPrivateError(OSError):
    """A directory pushsync was told to use is not safe to use; the message says why, in one line."""


@contextmanager
def replacing(path: Path, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO]:
    """Open a new private file that takes the place of `path` once the block ends without an error.

    mode: "wb" or "w" (then `encoding`, UTF-8 by default). On an error the new file is removed and
    whatever was at `path` stays as it was.
    """
    path = Path(path)
    # mkstemp opens with O_CREAT | O_EXCL | O_NOFOLLOW and mode 0600, which no umask can widen.
    descriptor, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        text = "b" not in mode
        with os.fdopen(descriptor, "w" if text else "wb", encoding=(encoding or "utf-8") if text else None) as stream:
            yield stream
        os.replace(temp, path)  # rename(2) replaces a symlink at `path` itself, never its target
    except BaseException:
        os.unlink(temp)
        raise


def private_directory(path: Path) -> Path:
    """Make `path` a private directory (missing parents too, each 0700), or check that the one there is
    (see `check_private_directory`); returns `path`. Raises NotPrivateError, or OSError when it cannot
    be made."""
    path = Path(path)
    missing = []
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIRECTORY_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: checked below like any existing one
        # The umask may have narrowed the mode (never widened it): set it exactly, on what was made.
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(descriptor, DIRECTORY_MODE)
        finally:
            os.close(descriptor)
    check_private_directory(path)
    return path


def check_private_directory(path: Path) -> None:
    """Raise NotPrivateError unless `path` is a directory, not a symlink, owned by this user, that
    neither its group nor others may write, under parents that only their owners may rename entries of."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise NotPrivateError(f"{path} does not exist") from None
    if stat.S_ISLNK(info.st_mode):
        raise NotPrivateError(f"{path} is a symlink; name a real directory")
    if not stat.S_ISDIR(info.st_mode):
        raise NotPrivateError(f"{path} is not a directory")
    if info.st_uid != os.geteuid():
        raise NotPrivateError(f"{path} belongs to user id {info.st_uid}, not to this user ({os.geteuid()})")
    if info.st_mode & OTHERS_WRITE:
        raise NotPrivateError(f"{path} is writable by its group or others (mode {stat.S_IMODE(info.st_mode):o}); "
                              "make it 0700")
    trusted = {os.geteuid(), ROOT_UID}
    for component in Path(os.path.abspath(path)).parents:
        # The owner of any directory or symlink on the way could swap what comes after it.
        owner = os.lstat(component).st_uid
        if owner not in trusted:
            raise NotPrivateError(f"{path} is under {component}, which belongs to user id {owner}; choose a "
                                  "directory whose every parent belongs to this user or to root")
    for parent in Path(os.path.realpath(path.parent)).joinpath("x").parents:
        # Whoever may rename entries of a parent could swap the checked directory for a symlink
        # between this check and its use; a sticky parent (such as /tmp) lets only owners do that.
        mode = os.stat(parent).st_mode
        if mode & OTHERS_WRITE and not mode & stat.S_ISVTX:
            raise NotPrivateError(f"{path} is inside {parent}, which its group or others may write without the "
                                  "sticky bit (someone could swap the directory); choose a directory under a private one")
