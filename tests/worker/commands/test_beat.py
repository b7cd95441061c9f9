"""`pushsync beat` schedules the sweeps and writes nothing where it was started."""

from __future__ import annotations

import sys

import pytest

from tests.worker.e2e import pipeline_env
from worker.children import Child

pytestmark = pytest.mark.process


def test_beat_keeps_its_schedule_in_memory_not_in_the_working_directory(redis_url, redis_broker_url, clean_emulator,
                                                                         tmp_path):
    started_in = tmp_path / "cwd"
    started_in.mkdir()
    env = pipeline_env(redis_url, redis_broker_url, clean_emulator)
    beat = Child("pushsync beat", [sys.executable, "-m", "worker", "beat"], env=env, log_path=tmp_path / "beat.log",
                 cwd=started_in)
    try:
        beat.wait_until(lambda: beat.log().count("Sending due task sweep-windows") >= 2)
    finally:
        beat.stop()
    assert list(started_in.iterdir()) == []
