"""The import rules of docs/architecture.md hold, and the check that enforces them can fail.

`lint-imports` (import-linter) checks the contracts in pyproject.toml. The tree is copied and
broken on purpose, once per rule, to prove each contract catches what it is there for: an
upstream import, a cycle, the Push API client reaching into the pipeline, the emulator using
what it is meant to check.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("worker", "producers", "emulator")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the tree at `root` with its pyproject.toml, as CI would."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages and their contracts, to break without touching the checkout."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_every_import_points_down_the_flow():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "added", "broken"), [
    # the windows stage reaching up to the metrics that observe it
    ("worker/windows/flush.py", "from worker.observe import metrics", "each layer imports only the layers below"),
    # a cycle: push imports windows, which imports push
    ("worker/push/pause.py", "from worker.windows import flush", "each layer imports only the layers below"),
    # the Push API client depending on the pipeline's settings
    ("worker/pushapi/errors.py", "from worker.settings import Settings", "worker.pushapi is a leaf"),
    # the oracle using what it tests
    ("emulator/limits.py", "from producers.events import limits", "the emulator is an independent oracle"),
    # a producer needing a worker installed beside it
    ("producers/publisher.py", "from worker.store import keys", "producers publish without the worker"),
])
def test_a_deliberate_upstream_import_breaks_its_contract(tree, module, added, broken):
    path = tree / module
    original = path.read_text()
    path.write_text(f"{original}\n{added}  # noqa: E402, F401\n")
    try:
        result = lint(tree)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout
