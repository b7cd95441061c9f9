"""Short and long profiles of the fault lanes: short ones run in every suite, long ones by hand."""

from __future__ import annotations

import os

import pytest

LONG = os.environ.get("PUSHSYNC_LONG_FAULTS") == "1"
"""The long profiles were asked for (`PUSHSYNC_LONG_FAULTS=1`)."""
long_only = pytest.mark.skipif(not LONG, reason="long fault profile: set PUSHSYNC_LONG_FAULTS=1")
