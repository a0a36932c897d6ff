"""Turn the authors' code runs (run.sh's `<condition>-s<seed>.csv`: peer, own step, exact return) into
run folders that `peerlearn report` reads like its own, so both codes sit in one table:

    python benchmarks/authors_code/to_runs.py OUT_DIR RESULTS_DIR STEPS
    peerlearn report results/room21-120k/runs RESULTS_DIR/runs --out ...

Each run becomes RESULTS_DIR/runs/room-21-authors-<condition>-s<seed>/ with a config.toml (task,
seed, peers, steps, mode), a summary.json (finished) and peers/peer-<i>/evaluations.csv. Their first
exact evaluation, at the peer's own step 1, is of the untrained network: it is written as step 0, so
report keeps it on the curve and leaves it out of the paper metric, as it does peerlearn's step-0
evaluation.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path


def convert(run_csv: Path, results: Path, steps: int) -> Path:
    condition, seed = run_csv.stem.rsplit("-s", 1)
    curves: dict[int, list[tuple[int, float]]] = defaultdict(list)
    with run_csv.open() as f:
        for peer, step, value in csv.reader(f):
            curves[int(peer)].append((0 if int(step) <= 1 else int(step), float(value)))
    run_dir = results / "runs" / f"room-21-authors-{condition}-s{seed}"
    mode = "peer" if condition == "peer" else "single"
    (run_dir / "peers").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(
        f'task = "room-21"\nseed = {int(seed)}\npeers = {len(curves)}\nsteps = {steps}\nmode = "{mode}"\n'
        'code = "kramerlab/PeerLearning cc4d51d"\n')
    (run_dir / "summary.json").write_text(json.dumps({"source": str(run_csv.name)}) + "\n")
    for index, points in curves.items():
        peer_dir = run_dir / "peers" / f"peer-{index}"
        peer_dir.mkdir(exist_ok=True)
        lines = ["step,time,mean_return,std_return,episodes,exact,returns"]
        lines += [f"{s},0,{v:.6g},0,80,1," for s, v in sorted(points)]
        (peer_dir / "evaluations.csv").write_text("\n".join(lines) + "\n")
    keep_provenance(run_csv, run_dir / "provenance")
    return run_dir


def keep_provenance(run_csv: Path, target: Path) -> None:
    """What lets a reader audit the run (run.sh writes it): the raw CSV the authors' code wrote, the exact
    command line, the checkout's commit and the venv's packages. The command names this machine's folders,
    so they are replaced by placeholders (AUTHORS_CHECKOUT, OUT_DIR, ...). Runs made before run.sh kept
    these have none; nothing is invented for them."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_csv, target / "raw.csv")
    kept = ((run_csv.with_suffix(".cmd"), "command.txt"), (run_csv.parent / "checkout.txt", "checkout.txt"),
            (run_csv.parent / "pip-freeze.txt", "pip-freeze.txt"))
    for source, name in kept:
        if source.exists():
            text = source.read_text()
            if name == "command.txt":
                text = anonymise(text, run_csv.parent)
            (target / name).write_text(text)


def anonymise(command: str, out: Path) -> str:
    """The command with the machine's folders replaced: the output folder, the home folder, the checkout."""
    words = command.split()
    if len(words) > 3:  # python run_exact_eval.py AUTHORS_CHECKOUT PART_CSV -- ...
        command = command.replace(words[0], "AUTHORS_PYTHON").replace(words[2], "AUTHORS_CHECKOUT")
        command = command.replace(str(Path(words[1]).parent), "benchmarks/authors_code")
    return command.replace(str(out.resolve()), "OUT_DIR").replace(str(out), "OUT_DIR").replace(str(Path.home()), "~")


def main() -> None:
    out, results, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    for run_csv in sorted(out.glob("*-s*.csv")):
        print(convert(run_csv, results, steps))


if __name__ == "__main__":
    main()
