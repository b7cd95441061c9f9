"""Coveo's own JS client (@coveo/push-api-client 4.x, a test-only Node helper in tests/node-coveo)
sets a source's status on the emulator over HTTP. The client parses the answer of every POST as
JSON, so it fails on an empty 201.

Skipped, saying why, where Node.js or the helper's packages (`npm ci --prefix tests/node-coveo`)
are absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.emulator.conftest import SOURCE, PushApi

HELPER_DIR = Path(__file__).resolve().parents[1] / "node-coveo"
HELPER = HELPER_DIR / "set_status.js"
CLIENT_PACKAGE = HELPER_DIR / "node_modules" / "@coveo" / "push-api-client"
NODE_SECONDS = 60
"""How long the helper may run: a start of Node and a few local calls."""
STATUSES = ["REBUILD", "INCREMENTAL", "IDLE"]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is absent: Coveo's JS client cannot be driven against the emulator here")
    if not CLIENT_PACKAGE.exists():
        pytest.skip(f"@coveo/push-api-client is not installed: run `npm ci --prefix {HELPER_DIR}`")
    return node


def test_coveo_js_client_sets_a_source_status(api: PushApi) -> None:
    node = _node()
    server = api.server
    run = subprocess.run(
        [node, str(HELPER), server.push_url, server.organization, server.api_key, SOURCE, *STATUSES],
        cwd=HELPER_DIR, capture_output=True, text=True, timeout=NODE_SECONDS, check=False,
    )
    assert run.returncode == 0, f"the JS client failed: {run.stderr.strip()}"
    assert [t["statusType"] for t in server.activities(SOURCE)["transitions"]] == STATUSES
