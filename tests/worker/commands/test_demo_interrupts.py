"""The demo's Ctrl-C is never lost: the KeyboardInterrupt its handler raises can land where Python
swallows it (a finalizer the garbage collector runs), and the demo still stops at its next step."""

from __future__ import annotations

import os
import signal
import sys
import weakref

import pytest

from worker.commands import demo


class PooledConnection:
    """Stands for an HTTP connection that a closed pool finalizes."""


@pytest.fixture()
def demo_handler():
    previous = signal.signal(signal.SIGINT, demo._interrupt)
    demo._signalled.clear()
    yield
    signal.signal(signal.SIGINT, previous)
    demo._signalled.clear()


def test_a_ctrl_c_swallowed_by_a_finalizer_still_stops_the_demo_at_its_next_pause(demo_handler, monkeypatch):
    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)
    connection = PooledConnection()
    weakref.finalize(connection, os.kill, os.getpid(), signal.SIGINT)
    del connection  # the finalizer runs, the signal's handler raises inside it, and Python only reports that
    assert [report.exc_type for report in swallowed] == [KeyboardInterrupt]
    with pytest.raises(KeyboardInterrupt):
        demo._pause([])


def test_no_signal_no_interrupt(demo_handler, monkeypatch):
    monkeypatch.setattr(demo, "POLL_SECONDS", 0)
    demo._pause([])


class NoDemo:
    """Stands for the demo's children and services: none are started."""

    embedded = None
    redis_url = "redis://127.0.0.1:1/0"
    emulator_url = "http://127.0.0.1:1"

    def __init__(self, *args: object) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_a_ctrl_c_swallowed_after_the_last_pause_still_ends_the_demo_interrupted(monkeypatch, tmp_path):
    """The index converged and the summary's HTTP calls are under way (no pause comes any more) when
    the Ctrl-C lands in a finalizer: the demo must exit INTERRUPTED, not 0."""
    monkeypatch.setattr(sys, "unraisablehook", lambda report: None)
    monkeypatch.setattr(demo, "Demo", NoDemo)
    monkeypatch.setattr(demo.tempfile, "mkdtemp", lambda prefix: str(tmp_path))

    def converged_while_interrupted(*_: object) -> int:
        connection = PooledConnection()
        weakref.finalize(connection, os.kill, os.getpid(), signal.SIGINT)
        del connection
        return 0

    monkeypatch.setattr(demo, "_converge", converged_while_interrupted)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, *demo.TERMINATIONS)}
    try:
        with pytest.raises(SystemExit) as exited:
            demo.run_demo(None, None, keep_logs=True)
    finally:
        for signum, handler in previous.items():  # an interrupted demo leaves them ignored
            signal.signal(signum, handler)
        demo._signalled.clear()
    assert exited.value.code == demo.INTERRUPTED
