"""Where the processes of one worker keep their metric values, so that its endpoint adds them up.

Under Celery's prefork pool, tasks run in pool children while the main process ingests and
serves /metrics. prometheus_client's multiprocess mode has every process write its values to
files in one directory (`PROMETHEUS_MULTIPROC_DIR`) that the serving process reads at each
scrape. The library picks that mode when it is first imported, so `share()` runs before any
module defines a metric, and this module must not import prometheus_client itself.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from producers.private_files import NotPrivateError, private_directory
from worker.settings import Settings, SettingsError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The variable prometheus_client reads to keep values in files."""
DEFAULT_PREFIX = "pushsync-metrics-"
"""Start of the name of the private directory a worker makes for each run when none is named."""
LIVE_GAUGES = "gauge_live"
"""Start of the names of the files of the gauges that count only while their process runs."""


def share(settings: Settings) -> Path | None:
    """When the worker serves metrics, make this process (and the children it forks) keep metric
    values in the worker's directory; returns that directory, or None when nothing is served.

    Without PUSHSYNC_METRICS_DIR that is a new private directory (0700), removed when this process
    exits; a named one must be a real directory of this user that nobody else may write (it is
    made so when missing), since the worker empties it: a planted symlink must never make it
    delete another directory's files. Raises SettingsError saying what is wrong with a named one.
    """
    if not settings.metrics_port:
        return None
    if settings.metrics_dir is None:
        directory = Path(tempfile.mkdtemp(prefix=f"{DEFAULT_PREFIX}{settings.metrics_port}-"))
        atexit.register(_remove, directory, os.getpid())
    else:
        directory = settings.metrics_dir
        try:
            private_directory(directory)
        except NotPrivateError as exc:
            raise SettingsError(f"PUSHSYNC_METRICS_DIR: refusing {exc}") from None
        except OSError as exc:
            raise SettingsError(f"PUSHSYNC_METRICS_DIR: cannot use {directory}: {exc.strerror}") from None
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def _remove(directory: Path, owner: int) -> None:
    """Remove the run's own directory, from the process that made it only (forked children inherit the hook)."""
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


def clean(directory: Path) -> None:
    """Remove the values an earlier run of the worker left (they are not this run's).

    Run it in the main process before it records anything: every pushsync metric has labels,
    so none has a value file before its first use.
    """
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)


def pid_of(path: Path) -> int | None:
    """The process a value file belongs to (prometheus_client names them `<type>_[<mode>_]<pid>.db`)."""
    _, _, pid = path.stem.rpartition("_")
    return int(pid) if pid.isdigit() else None


def forget(directory: Path, pid: int) -> None:
    """Remove the live gauges of process `pid` (it has exited, or is exiting): they must stop
    counting. The process itself and any scrape that finds it gone may do this at the same time."""
    for path in directory.glob(f"{LIVE_GAUGES}*.db"):
        if pid_of(path) == pid:
            path.unlink(missing_ok=True)
