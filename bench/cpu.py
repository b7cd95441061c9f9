"""CPU time of processes as Linux reports it in /proc, for the benchmarks' CPU figures."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from memory import tree

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
STAT_UTIME = 11
"""Where utime is among the fields of /proc/PID/stat that follow the command name; stime,
cutime and cstime come after it."""


def cpu_seconds(pid: int, *, reaped: bool = True) -> float:
    """User and system CPU seconds of one process; 0 once it is gone.

    reaped: also count its children that ended and that it waited for (a server's forks).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses: the fields start after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    times = fields[STAT_UTIME : STAT_UTIME + (4 if reaped else 2)]
    return sum(int(ticks) for ticks in times) / TICKS_PER_SECOND


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of all its descendants (a Celery worker and its pool)."""
    return sum(cpu_seconds(member) for member in tree(pid))


def usage_seconds(usage: resource.struct_rusage) -> float:
    """User and system CPU seconds of a finished process, from its rusage (os.wait4)."""
    return usage.ru_utime + usage.ru_stime
