"""Where the processes of one worker keep their metric values, so that its endpoint adds them up.

Under Celery's prefork pool, tasks run in pool children while the main process ingests and
serves /metrics. prometheus_client's multiprocess mode has every process write its values to
files in one directory (`PROMETHEUS_MULTIPROC_DIR`) that the serving process reads at each
scrape. The library picks that mode when it is first imported, so `share()` runs before any
module defines a metric, and this module must not import prometheus_client itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from worker.settings import Settings, SettingsError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The variable prometheus_client reads to keep values in files."""


def share(settings: Settings) -> Path | None:
    """When the worker serves metrics, make this process (and the children it forks) keep metric
    values in the worker's directory; returns that directory, or None when nothing is served."""
    if not settings.metrics_port:
        return None
    directory = settings.metrics_directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"PUSHSYNC_METRICS_DIR: cannot use {directory}: {exc.strerror}") from None
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


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
