"""The README's main command: `pushsync demo` on embedded defaults finishes with the expected index."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process

DEMO_TIMEOUT_SECONDS = 300


def test_demo_on_embedded_defaults_converges_and_cleans_up():
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKER_URL")}
    result = subprocess.run([sys.executable, "-m", "worker", "demo"], env=env, capture_output=True, text=True,
                            timeout=DEMO_TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting: embedded Redis" in result.stdout
    assert "the index holds exactly the expected 130 items (20 deleted)" in result.stdout
    assert "REFRESH → IDLE" in result.stdout
    # Only this demo's processes: another session's demo may be running on the same machine.
    (directory,) = re.findall(r"\(logs in (\S+)\)", result.stdout)
    leftovers = subprocess.run(["pgrep", "-f", directory], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
