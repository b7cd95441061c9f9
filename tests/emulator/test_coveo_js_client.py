"""Coveo's own JS client (@coveo/push-api-client 4.x, a test-only Node helper in tests/node-coveo)
sets a source's status on the emulator over HTTP. The client parses the answer of every POST as
JSON, so it fails on an empty 201.

The helper's packages are installed on first use; skipped, saying why, where Node.js is absent
(failed under CI).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.emulator.conftest import SOURCE, PushApi
from tests.support.node import node_helper

HELPER_DIR = Path(__file__).resolve().parents[1] / "node-coveo"
HELPER = HELPER_DIR / "set_status.js"
NODE_SECONDS = 60
"""How long the helper may run: a start of Node and a few local calls."""
STATUSES = ["REBUILD", "INCREMENTAL", "IDLE"]


def test_coveo_js_client_sets_a_source_status(api: PushApi) -> None:
    node = node_helper(HELPER_DIR, "@coveo/push-api-client")
    server = api.server
    run = subprocess.run(
        [node, str(HELPER), server.push_url, server.organization, server.api_key, SOURCE, *STATUSES],
        cwd=HELPER_DIR, capture_output=True, text=True, timeout=NODE_SECONDS, check=False,
    )
    assert run.returncode == 0, f"the JS client failed: {run.stderr.strip()}"
    assert [t["statusType"] for t in server.activities(SOURCE)["transitions"]] == STATUSES
