"""Contentful's own signing library (@contentful/node-apps-toolkit), run in one long-lived Node process.

tests/node holds the helper (`contentful_sign.mjs`) and the lock file pinning the toolkit;
`start_toolkit` installs it there with `npm ci` when it is missing, then keeps one process that
answers a JSON line for each JSON line, so hundreds of requests cost milliseconds each.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support.node import node_helper

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
HELPER = NODE_DIR / "contentful_sign.mjs"
TOOLKIT_PACKAGE = "@contentful/node-apps-toolkit"


class Toolkit:
    """The toolkit's signRequest and verifyRequest, called through the helper process."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    def sign(self, secret: str, request: dict[str, Any], timestamp_ms: int) -> dict[str, str]:
        """signRequest's headers for `request` ({method, path, headers, body}) signed at `timestamp_ms`."""
        return self._ask({"op": "sign", "secret": secret, "request": request, "timestamp": timestamp_ms})["headers"]

    def verify(self, secret: str, request: dict[str, Any], ttl_seconds: float) -> tuple[bool, str | None]:
        """verifyRequest's verdict on `request`, and the error it threw if it threw one."""
        reply = self._ask({"op": "verify", "secret": secret, "request": request, "ttl": ttl_seconds})
        return reply["ok"], reply.get("error")

    def close(self) -> None:
        """End the helper process."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        assert line, f"the Node helper exited (code {self._process.poll()})"
        reply = json.loads(line)
        assert "failure" not in reply, reply["failure"]
        return reply


def start_toolkit() -> Toolkit:
    """The helper process; skips where Node or npm is missing, but fails under CI (`CI` set)."""
    node = node_helper(NODE_DIR, TOOLKIT_PACKAGE)
    process = subprocess.Popen([node, str(HELPER)], cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, encoding="utf-8")
    return Toolkit(process)
