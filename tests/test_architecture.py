"""The import rules of docs/architecture.md hold, and the checks that enforce them can fail.

`lint-imports` (import-linter) checks the contracts in pyproject.toml; a graph of the imports
(grimp, import-linter's own) shows there is no cycle and that every module of the worker has its
layer. The tree is copied and broken on purpose, once per rule, to prove each check catches what
it is there for: an upstream import, a cycle inside one package, the Push API client reaching
into the pipeline, the emulator using what it is meant to check, a stage loading prometheus.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("worker", "producers", "emulator")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
UNLAYERED = {"worker", "worker.__main__"}
"""The package itself and `python -m worker`, which only calls the command line."""
CYCLES = """
import json, sys
import grimp

graph = grimp.build_graph(*sys.argv[1:], exclude_type_checking_imports=True, cache_dir=None)
index, low, stack, on, cycles = {}, {}, [], set(), []

def visit(module):
    index[module] = low[module] = len(index)
    stack.append(module)
    on.add(module)
    for imported in graph.find_modules_directly_imported_by(module):
        if imported not in index:
            visit(imported)
            low[module] = min(low[module], low[imported])
        elif imported in on:
            low[module] = min(low[module], index[imported])
    if low[module] == index[module]:
        component = []
        while not component or component[-1] != module:
            component.append(stack.pop())
            on.discard(component[-1])
        if len(component) > 1:
            cycles.append(sorted(component))

sys.setrecursionlimit(10_000)
for module in sorted(graph.modules):
    if module not in index:
        visit(module)
print(json.dumps({"cycles": cycles, "modules": sorted(graph.modules)}))
"""
"""Tarjan's strongly connected components over the import graph: any component of two or more
modules is a cycle (imports under TYPE_CHECKING, which never run, do not count)."""


def lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the tree at `root` with its pyproject.toml (only `contracts`, when named)."""
    chosen = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *chosen, str(root / "pyproject.toml")],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )


def graph(root: Path) -> dict[str, list]:
    """The cycles among the project's modules at `root`, and the modules themselves."""
    result = subprocess.run([sys.executable, "-c", CYCLES, *PACKAGES], cwd=root, env={"PYTHONPATH": str(root)},
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


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
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout, result.stdout


def test_no_module_imports_itself_back():
    assert graph(REPO)["cycles"] == []


def test_every_module_of_the_worker_has_its_layer():
    (layers,) = [contract["layers"] for contract in CONTRACTS if contract["type"] == "layers"]
    named = [name.strip() for layer in layers for name in layer.split("|")]
    worker = [module for module in graph(REPO)["modules"] if module.split(".")[0] == "worker"]
    unlayered = [module for module in worker if module not in UNLAYERED
                 and not any(module == name or module.startswith(name + ".") for name in named)]
    assert unlayered == []


@contextmanager
def broken(tree: Path, module: str, added: str) -> Iterator[None]:
    """`module` of the copy with the import `added` at its end, while the block runs."""
    path = tree / module
    original = path.read_text()
    path.write_text(f"{original}\n{added}  # noqa: E402, F401\n")
    try:
        yield
    finally:
        path.write_text(original)


@pytest.mark.parametrize(("module", "added", "contract"), [
    # the windows stage reaching up to the metrics that observe it
    ("worker/windows/flush.py", "from worker.observe import metrics", "layers"),
    # push importing windows, which imports push
    ("worker/push/pause.py", "from worker.windows import flush", "layers"),
    # the Push API client depending on the pipeline's settings
    ("worker/pushapi/errors.py", "from worker.settings import Settings", "pushapi-leaf"),
    # the oracle using what it tests
    ("emulator/limits.py", "from producers.events import limits", "emulator-oracle"),
    # a producer needing a worker installed beside it
    ("producers/publisher.py", "from worker.store import keys", "producers-alone"),
    # a stage loading prometheus_client before the worker chose where its values live
    ("worker/push/batch.py", "import prometheus_client", "no-prometheus-below-observe"),
])
def test_a_deliberate_upstream_import_breaks_its_contract(tree, module, added, contract):
    assert lint(tree, contract).returncode == 0, f"the copy keeps {contract} before it is broken"
    with broken(tree, module, added):
        result = lint(tree, contract)
    assert result.returncode != 0 and "0 kept, 1 broken" in result.stdout, result.stdout


def test_a_cycle_inside_one_package_is_found(tree):
    with broken(tree, "worker/push/lease.py", "from worker.push import batch"):
        cycles = graph(tree)["cycles"]
    assert any({"worker.push.lease", "worker.push.batch"} <= set(cycle) for cycle in cycles), cycles
