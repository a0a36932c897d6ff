"""A run's decision log summarised per window of group steps, small enough to keep with its results.

decisions.csv has one row per candidate of every softmax choice (about 2 MB for a 120,000-step 2-peer
run), too large to commit for every run of a grid. decisions_summary.csv keeps, per window and
asker, what a reader asks of it: how far apart each normalised component (critic, trust, agent value)
puts the candidates, and how decisive the choice is. The sweep writes it beside a finished run's
other result files; for a run made before that:

    python -m orchestrator.experiments.decisions RUN_DIR [TARGET_DIR]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import tomllib
from operator import itemgetter
from pathlib import Path

COMPONENTS = ("critic", "trust", "agent_values")
SUMMARY_FILE = "decisions_summary.csv"
FIELDS = ["group_step", "asker", "decisions", *(f"spread_{c}" for c in COMPONENTS), "top_probability"]


def summarise(path: Path, window: int = 500) -> list[dict[str, str]]:
    """Per window of `window` group steps (named by its last step) and asker: the number of decisions,
    the mean over them of each component's spread (its largest minus its smallest normalised value over
    the candidates; empty when the component is switched off) and the mean probability of the most
    likely candidate."""
    sums: dict[tuple[int, str], dict[str, float]] = {}
    with path.open() as f:
        # A decision's candidates are consecutive rows with the same step and asker (recorder.decision).
        for (step, asker), rows in itertools.groupby(csv.DictReader(f), key=itemgetter("group_step", "peer")):
            candidates = list(rows)
            end = -(-int(step) // window) * window
            acc = sums.setdefault((end, asker), {"decisions": 0.0, "top_probability": 0.0})
            acc["decisions"] += 1
            acc["top_probability"] += max(float(r["probability"]) for r in candidates)
            for c in COMPONENTS:
                values = [float(r[c]) for r in candidates if r[c] != ""]
                if values:
                    acc[c] = acc.get(c, 0.0) + max(values) - min(values)
    out = []
    for (end, asker), acc in sorted(sums.items()):
        n = acc["decisions"]
        row = {"group_step": str(end), "asker": asker, "decisions": str(int(n)),
               "top_probability": f"{acc['top_probability'] / n:.4g}"}
        row |= {f"spread_{c}": f"{acc[c] / n:.4g}" if c in acc else "" for c in COMPONENTS}
        out.append(row)
    return out


def write_summary(run_dir: Path, target_dir: Path) -> bool:
    """decisions_summary.csv of run_dir's decisions.csv in target_dir, windows of the run's log_every
    (group.csv's rows). False when the run logged no decisions (a single agent)."""
    source = run_dir / "decisions.csv"
    if not source.exists():
        return False
    config = run_dir / "config.toml"
    window = int(tomllib.loads(config.read_text()).get("log_every", 500)) if config.exists() else 500
    rows = summarise(source, window)
    if not rows:
        return False
    target_dir.mkdir(parents=True, exist_ok=True)
    with (target_dir / SUMMARY_FILE).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return True


def read_summary(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / SUMMARY_FILE
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write decisions_summary.csv of a run folder's decisions.csv")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("target_dir", type=Path, nargs="?", help="where to write it (default: the run folder)")
    args = parser.parse_args(argv)
    written = write_summary(args.run_dir, args.target_dir or args.run_dir)
    print(f"{args.run_dir}: " + ("decisions_summary.csv written" if written else "no decisions.csv, nothing written"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
