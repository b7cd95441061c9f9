"""Memory of processes as Linux reports it in /proc, for the benchmarks' RSS figures."""

from __future__ import annotations

from pathlib import Path

KIB_PER_MIB = 1024


def status_mib(pid: int, field: str) -> float:
    """A memory line of /proc/PID/status in MiB: `VmRSS` (now) or `VmHWM` (peak); NaN once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) / KIB_PER_MIB
    raise LookupError(field)


def peak_rss_mib(pid: int) -> float:
    """The peak RSS (VmHWM) of one process, in MiB."""
    return status_mib(pid, "VmHWM")


def tree_peak_rss_mib(pid: int) -> float:
    """The largest peak RSS among a process and its descendants (a Celery worker and its pool), in MiB."""
    peaks = [peak for member in tree(pid) if (peak := peak_rss_mib(member)) == peak]  # NaN: gone meanwhile
    return max(peaks, default=0.0)


def tree(pid: int) -> list[int]:
    """A process and its descendants, parents first."""
    members = [pid]
    for member in members:
        try:
            members += [int(child) for child in Path(f"/proc/{member}/task/{member}/children").read_text().split()]
        except OSError:
            continue
    return members
