"""One benchmark's results as JSON in `bench/results/<name>.json`, the input of `bench/report.py`.

    from results import at_least, below, write_result
    write_result("ingest", "Ingestion into Redis", "bench/bench_ingest.py", {"events_per_second": 6424.0},
                 [at_least("events per second", 6424.0, 25_000)], ["what the figures mean"])

The scripts run as `python bench/<script>.py`, so this module is importable as `results`.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from worker.redaction import redact

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
MACHINE_NOTE = "development machine shared with other work"
"""Said of every result: figures move with whatever else runs at the time."""


@dataclass(frozen=True)
class Target:
    """A figure held against its target."""

    name: str
    """What is measured, as the page names it."""
    value: float
    """The measured figure."""
    target: str
    """The bound as text, such as '>= 10000' or '< 300'."""
    met: bool
    """Whether the figure reaches the bound."""


def at_least(name: str, value: float, bound: float) -> Target:
    """A target met when `value` is `bound` or more."""
    return Target(name, value, f">= {bound:g}", value >= bound)


def above(name: str, value: float, bound: float) -> Target:
    """A target met when `value` is over `bound`."""
    return Target(name, value, f"> {bound:g}", value > bound)


def below(name: str, value: float, bound: float) -> Target:
    """A target met when `value` is under `bound`."""
    return Target(name, value, f"< {bound:g}", value < bound)


def verdict(target: Target) -> str:
    """'met' or 'NOT MET', as the scripts print it."""
    return "met" if target.met else "NOT MET"


def echo_targets(targets: Iterable[Target], indent: str = "") -> None:
    """Print each target with its value and verdict, one line each, after `indent`."""
    for target in targets:
        value = f"{target.value:,.2f}".rstrip("0").rstrip(".")
        print(f"{indent}target: {target.name} {target.target}: {value}: {verdict(target)}")


def invocation() -> str:
    """The command line this script was started with, relative to the repository, for `command`.

    A password in a URL argument (`--broker-url`) is masked: the results are committed.
    """
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    return redact(shlex.join(["python", str(shown), *sys.argv[1:]]))


def machine(note: str = MACHINE_NOTE) -> str:
    """The cores and processor of this machine, and `note`: what else it was doing."""
    return f"{os.cpu_count()} cores, {platform.machine()}, {note}"


def write_result(name: str, title: str, command: str, figures: Mapping[str, float], targets: Iterable[Target],
                 notes: Iterable[str], *, machine_note: str = MACHINE_NOTE) -> Path:
    """
    Write `bench/results/<name>.json` and return its path.

    name: the file's stem, one per benchmark.
    title: the benchmark's heading on the page.
    command: how the figures were produced, with the arguments that were used (see `invocation`).
    figures: flat names to numbers (units in the names: `wall_seconds`, `peak_rss_mib`); a baseline's figure
        is its pushsync figure's name prefixed with `baseline_`, and the page shows the two side by side.
    targets: the figures held against the issue's targets.
    notes: sentences that say how to read the figures.
    machine_note: what else the machine was doing, if anything unusual.
    """
    bad = [key for key, value in figures.items() if isinstance(value, bool) or not isinstance(value, int | float)]
    if bad:
        raise TypeError(f"figures must be numbers: {', '.join(bad)}")
    result = {
        "name": name,
        "title": title,
        "command": command,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(machine_note),
        "figures": dict(figures),
        "targets": [asdict(target) for target in targets],
        "notes": list(notes),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"results written to {path}")
    return path
