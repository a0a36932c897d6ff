"""The architecture of docs/architecture.md as import contracts (pyproject.toml, [tool.importlinter]):
the floors (CLI, API and benchmarks, experiments, running a group, the loop, settings), a loop that
imports no peer code, standalone peers, shared helpers that import neither side, and no import
cycles. Imports inside functions count, so a lazy import cannot hide a dependency."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages under `root` (a fresh process: this one has imported the real ones)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(("module", "lazy_import"), [
    ("orchestrator/loop/trust.py", "from peer_service.peer import Peer"),  # the loop reaching for peer code
    ("orchestrator/loop/group.py", "from orchestrator.running.run import run_group"),  # a floor upwards
    ("peer_service/learner.py", "from orchestrator.config import RunConfig"),  # a peer needing the orchestrator
    ("orchestrator/experiments/stats.py", "from orchestrator.experiments.report import report"),  # a cycle
])
def test_a_lazy_import_that_breaks_the_architecture_is_caught(tmp_path: Path, module: str, lazy_import: str,
                                                             ) -> None:
    for name in ("pyproject.toml", "peerlearn", "orchestrator", "peer_service", "benchmarks"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    with (tmp_path / module).open("a") as f:
        f.write(f"\n\ndef _added_by_the_test() -> None:\n    {lazy_import}  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-3000:]


# Data, reports and pictures: what a run or a study made. Code in results/ would sit outside the contracts.
DATA_SUFFIXES = {".csv", ".json", ".jsonl", ".toml", ".md", ".txt", ".png"}


def test_results_hold_data_not_code() -> None:
    """results/ holds what the experiments made; the code that makes it lives with them, under the
    contracts (orchestrator/experiments/, benchmarks/: the studies, the authors' code beside ours)."""
    listed = subprocess.run(["git", "ls-files", "results"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no file list to scan")
    assert listed.stdout, "git lists nothing under results/: the scan reads what it should"
    other = [path for path in listed.stdout.splitlines() if Path(path).suffix not in DATA_SUFFIXES]
    assert not other, f"not data, in results/: {other}"
