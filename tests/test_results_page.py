"""results/results_page.py: a section of docs/results.md from committed run folders (tables, claims
with computed verdicts, the adversary's share per run, missing runs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.test_report import _fake_run

SCRIPT = Path(__file__).resolve().parents[1] / "results" / "results_page.py"


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("results_page", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec is not None and spec.loader is not None
    monkeypatch.setitem(sys.modules, "results_page", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    return module


def test_section_reports_claims_verdicts_adversary_share_and_missing_runs(page, tmp_path: Path) -> None:  # noqa: ANN001
    runs = tmp_path / "results" / "adv" / "runs"
    for seed, (good, bad) in enumerate([(10, 0), (20, 0), (30, 5), (40, 5)]):
        _fake_run(runs, f"room-21-adversarial-s{seed}", seed, {"peer-0": [0, good, good], "peer-1": [0, good, good]})
        _fake_run(runs, f"room-21-weak-s{seed}", seed, {"peer-0": [0, bad, bad], "peer-1": [0, bad, bad]})
    ex = page.Experiment(key="adv", title="Adversary", intro="intro", commands=["cmd"], folders=["results/adv/runs"],
                         expected=[f"room-21-{c}-s{s}" for c in ("adversarial", "weak") for s in range(5)],
                         order=["adversarial", "weak"], claims=[("adversarial", "weak", "beats weak")])
    ex = page.Experiment(**{**ex.__dict__, "key": "room21-adversary-60k"})
    (tmp_path / "results" / "room21-adversary-60k").mkdir(parents=True)
    text = page.section(1, ex)
    assert "| beats weak | adversarial vs weak | 4 vs 4 | 1.00 [1.00, 1.00] | 0.014 | **holds** |" in text
    # the fake runs' adversary (peer-2) took 0.5 of the actions in the first window and 0 in the last
    assert "| room-21-adversarial-s0 | 0.500 | 0.000 | 200 |" in text
    assert (tmp_path / "results" / "room21-adversary-60k" / "adversary_share.png").exists()
    assert "**Missing** (2 of 10 runs" in text and "room-21-weak-s4" in text


def test_a_section_without_runs_says_so(page) -> None:  # noqa: ANN001
    ex = page.Experiment(key="none", title="Nothing yet", intro="", commands=["cmd"], folders=["results/none/runs"],
                         expected=["a", "b"], order=["peer"])
    assert "**Not run yet**: 0 of 2 runs." in page.section(2, ex)
