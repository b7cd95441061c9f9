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
