"""The emulator judges the worker as the service would: it must not share the worker's code."""

from __future__ import annotations

import subprocess
import sys


def test_the_emulator_imports_nothing_of_the_worker() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, emulator.app, emulator.cli; "
                               "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'worker'))"],
        capture_output=True, text=True, check=True,
    )
    assert loaded.stdout.strip() == "[]"
