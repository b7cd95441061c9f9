"""A scrape adds up the value files of every process of the worker (`collectors.WorkerProcesses`)
while those processes come and go: a file that a process is creating, or one removed because its
process exited, must not fail the scrape (CI once saw the endpoint answer 500 at a worker's start).

The files are written with prometheus_client's own `MmapedDict`, the writer every process uses."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from worker.observe import metric_files
from worker.observe.collectors import WorkerProcesses

SCRAPES = 400
"""Scrapes made while processes churn: on the code before the fix, a few dozen of them failed."""
GONE_PID = 4_000_000
"""Above Linux's largest pid: a process that cannot be running."""


def record(path: Path, name: str, value: float) -> None:
    """Write one value the way a process's prometheus_client does, into the file at `path`
    (a counter's sample is named with `_total`)."""
    sample = f"{name}_total" if path.name.startswith("counter") else name
    values = MmapedDict(str(path))
    try:
        values.write_value(mmap_key(name, sample, ["part"], ["p"], f"{name} help"), value, 0)
    finally:
        values.close()


def totals(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_a_file_still_empty_is_left_out_and_the_rest_is_served(tmp_path):
    record(tmp_path / "counter_1.db", "pushsync_done", 3)
    record(tmp_path / "counter_2.db", "pushsync_done", 4)
    # A process that was creating its file (it exists at 0 bytes until it is sized), or that was
    # SIGKILLed in that instant and left it so for good.
    (tmp_path / "counter_3.db").touch()
    registry = CollectorRegistry()
    WorkerProcesses(registry, tmp_path)
    assert totals(registry)["pushsync_done_total"] == 7


def test_scrapes_succeed_while_processes_start_and_exit(tmp_path):
    record(tmp_path / "counter_1.db", "pushsync_done", 5)
    registry = CollectorRegistry()
    WorkerProcesses(registry, tmp_path)
    stop = threading.Event()

    def churn() -> None:
        """Processes that each record a counter and a live gauge, then exit: each forgets its gauge
        as a pool child does at its shutdown (a scrape may be forgetting it too), and the
        counter's file is removed as well, so that the directory stays small."""
        pid = GONE_PID
        while not stop.is_set():
            pid += 1
            counter = tmp_path / f"counter_{pid}.db"
            record(counter, "pushsync_started", 1)
            record(tmp_path / f"gauge_livesum_{pid}.db", "pushsync_running", 1)
            metric_files.forget(tmp_path, pid)
            counter.unlink()

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    failures: list[BaseException] = []
    try:
        for _ in range(SCRAPES):
            try:
                served = totals(registry)
            except Exception as exc:  # noqa: BLE001 - every kind of failed scrape is counted
                failures.append(exc)
                continue
            assert served["pushsync_done_total"] == 5
            assert served.get("pushsync_started_total", 0) <= 1
            assert served.get("pushsync_running", 0) <= 1
    finally:
        stop.set()
        churner.join()
    assert not failures, f"{len(failures)} of {SCRAPES} scrapes failed, first: {failures[0]!r}"


def test_a_pid_another_users_process_took_counts_as_gone(tmp_path, monkeypatch):
    # As root (CI) every pid can be signalled: what an unprivileged worker meets is played by os.kill.
    record(tmp_path / f"gauge_livesum_{GONE_PID}.db", "pushsync_running", 1)
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if pid == GONE_PID:
            raise PermissionError(1, "Operation not permitted")
        real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    registry = CollectorRegistry()
    WorkerProcesses(registry, tmp_path)
    assert totals(registry).get("pushsync_running", 0) == 0
    assert not list(tmp_path.glob("gauge_live*.db"))
