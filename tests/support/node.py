"""Test-only Node.js helpers (vendors' own JS libraries), each in a folder of tests/ with its lock file.

`node_helper(folder, package)` returns the `node` to run a helper of `folder` with, after installing
the folder's pinned packages with `npm ci` when `package` is not there yet. Where Node.js or npm is
missing, or the install fails, the test is skipped saying why, except under CI (`CI` set), where it
fails: .ci/run installs Node.js, so a comparison with a vendor's library never silently drops out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.claims import held

INSTALL_TIMEOUT_SECONDS = 300
"""How long `npm ci` may take: a download of the pinned packages from the npm registry."""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI requires it (.ci/run installs Node.js and npm)")
    pytest.skip(f"{reason}: install Node.js and npm to run this comparison with the vendor's own library")


def node_helper(folder: Path, package: str) -> str:
    """The path of `node`, with `folder`'s packages installed; package: one of them, e.g. "@scope/name"."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node or npm is not installed")
    assert node is not None and npm is not None
    # `npm ci` first deletes node_modules: a session beside this one on the same checkout must wait.
    with held(f"npm-{folder}"):
        if not (folder / "node_modules" / package / "package.json").exists():
            installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True,
                                       text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False)
            if installed.returncode != 0:
                _unavailable(f"npm ci in {folder} failed: {installed.stderr.strip()[-500:]}")
    return node
