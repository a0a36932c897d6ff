"""Runs as the report reads them: one `RunData` per run folder (its config, learners' evaluations and
follow counts), written to and read back from the report's CSV files, and grouped into `Row`s of
(task, condition). The report's tables (report.py) and figures (report_plots.py) both take these.
"""

from __future__ import annotations

import csv
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.experiments.stats import area_under_curve, follow_rates
from peerlearn.settings import UserError, task_in_name

# config.toml keys that do not change what a run learns: where its results go and how it is watched,
# its transport, deadlines, fault handling and security. Runs that differ only in these (or the seed)
# are the same setting; any other difference is another setting, which the report never pools.
NOT_SETTINGS = frozenset({
    "seed", "name", "out", "progress", "status_port", "transport", "log_every", "checkpoint_every",
    "keep_checkpoints", "rpc_timeout_s", "step_timeout_s", "hedge_after_s", "keepalive_s", "keepalive_timeout_s",
    "max_reconnect_backoff_s", "eject_after", "redial_on_timeout", "quorum", "below_quorum", "pause_timeout_s",
    "quarantine_steps", "ban_after", "probe_max_backoff_s", "restart_peers", "tls_ca", "tls_cert", "tls_key",
    "token_files", "allow_insecure",
})

# ---------------------------------------------------------------------------- reading runs


@dataclass
class RunData:
    name: str
    task: str
    condition: str
    seed: int
    peers: int
    steps: int
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # peer -> (steps, returns)
    follow: list[tuple[float, str, float]] = field(default_factory=list)  # (group step, followed peer, rate)
    roles: dict[str, str] = field(default_factory=dict)
    advice_share: float = math.nan  # share of all executed (post-warm-up) actions that came from another peer
    settings: dict[str, Any] = field(default_factory=dict)  # what the run learned with (config.toml, NOT_SETTINGS out)

    @property
    def learners(self) -> list[str]:
        return sorted(self.curves)

    def avg_return(self, peer: str = "") -> float:
        """The paper metric averaged over the run's learners, or of one learner (`peer`; NaN if absent)."""
        if peer:
            return area_under_curve(*self.curves[peer]) if peer in self.curves else math.nan
        return float(np.mean([area_under_curve(s, r) for s, r in self.curves.values()]))

    def final_return(self) -> float:
        return float(np.mean([r[-1] for _, r in self.curves.values()]))

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The run's learning curve: the learners' evaluations averaged at the steps all share."""
        steps = sorted(set.intersection(*(set(s.tolist()) for s, _ in self.curves.values())))
        vals = [
            np.array([dict(zip(s.tolist(), r.tolist(), strict=True))[x] for x in steps])
            for s, r in self.curves.values()
        ]
        return np.array(steps, dtype=float), np.mean(vals, axis=0)


def condition_label(name: str, task: str, seed: int, cfg: dict) -> str:
    m = re.fullmatch(re.escape(task_in_name(task)) + r"-(.+)-s" + str(seed), name)
    if m:
        return m.group(1)
    mode = cfg.get("mode", "peer")
    label = mode
    if mode == "peer":
        comps = "".join(
            c for c, k in (("C", "use_critic"), ("T", "use_trust"), ("V", "use_agent_values")) if cfg.get(k, True)
        )
        label += f"-{comps}" + ("" if cfg.get("use_advantage", True) else "-noadv")
    roles = [r for r in cfg.get("roles", []) if r != "learner"]
    return label + f"-N{cfg.get('peers')}" + ("-" + "-".join(roles) if roles else "")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def load_run(run_dir: Path, windows: int = 10, unfinished: bool = False) -> RunData | None:
    """A finished run (its summary.json exists; with `unfinished`, also a running or killed one);
    None when it is unfinished or has no evaluation yet."""
    if not unfinished and not (run_dir / "summary.json").exists():
        return None
    cfg = tomllib.loads((run_dir / "config.toml").read_text())
    task, seed = str(cfg.get("task")), int(cfg.get("seed", 0))
    roles = list(cfg.get("roles") or [])
    run = RunData(
        name=run_dir.name,
        task=task,
        condition=condition_label(run_dir.name, task, seed, cfg),
        seed=seed,
        peers=int(cfg.get("peers", 0)),
        steps=int(cfg.get("steps", 0)),
        roles={f"peer-{i}": r for i, r in enumerate(roles)},
        settings=run_settings(cfg),
    )
    for path in sorted((run_dir / "peers").glob("*/evaluations.csv")):
        rows = _read_csv(path)
        if rows:
            run.curves[path.parent.name] = (
                np.array([float(r["step"]) for r in rows]),
                np.array([float(r["mean_return"]) for r in rows]),
            )
    if not run.curves:
        return None
    group = run_dir / "group.csv"
    if group.exists():
        rows = _read_csv(group)
        if rows:
            followed = sorted({k.split("/")[2] for k in rows[0] if k.startswith("follow/")})
            t = np.array([float(r["group_step"]) for r in rows])
            counts = np.array(
                [
                    [
                        sum(float(v) for k, v in r.items() if k.startswith("follow/") and k.endswith("/" + b))
                        for b in followed
                    ]
                    for r in rows
                ]
            )
            last = rows[-1]
            pairs = [(k.split("/")[1], k.split("/")[2], float(v)) for k, v in last.items() if k.startswith("follow/")]
            total = sum(x for _, _, x in pairs)
            run.advice_share = sum(x for a, b, x in pairs if a != b) / total if total > 0 else math.nan
            ends, rates = follow_rates(t, counts, windows)
            run.follow = [(float(e), b, float(rates[w, j])) for w, e in enumerate(ends) for j, b in enumerate(followed)]
    return run


def run_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The settings a run learned with: its config.toml, a key it lacks (written before that setting
    existed) at today's default, without NOT_SETTINGS."""
    from orchestrator.config import RunConfig

    return {k: v for k, v in {**RunConfig().to_dict(), **cfg}.items() if k not in NOT_SETTINGS}


def separate_settings(runs: list[RunData]) -> list[RunData]:
    """Runs of one (task, condition) with different settings (say, two `peerlearn run`s with other steps
    or learner settings, which get the same config-made condition) are not seeds of one experiment:
    each gets the settings that differ appended to its condition, so that they form rows of their own.
    Runs read back from CSV carry no settings and stay as they are."""
    from orchestrator.config import toml_value

    groups: dict[tuple[str, str], list[RunData]] = {}
    for r in runs:
        groups.setdefault((r.task, r.condition), []).append(r)
    for members in groups.values():
        keys = sorted({k for r in members for k in r.settings})
        differ = [k for k in keys if len({toml_value(r.settings.get(k)) for r in members}) > 1]
        for r in members if differ else []:
            r.condition += " (" + ", ".join(f"{k}={toml_value(r.settings.get(k))}" for k in differ) + ")"
    return runs


def refuse_repeated_seeds(runs: list[RunData]) -> None:
    """Two runs of one task, condition and setting with the same seed are one experiment made twice, not
    two seeds: pooled, they would count as two independent runs ("2 (0,0)"). Said in one line."""
    seen: dict[tuple[str, str, int], str] = {}
    for r in runs:
        first = seen.setdefault((r.task, r.condition, r.seed), r.name)
        if first != r.name:
            raise UserError(f"report: {first} and {r.name} are both {r.task} / {r.condition} with seed {r.seed}: "
                            "the same experiment twice, not two seeds; leave one of them out")


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "config.toml").exists():
            found.append(p)
        elif p.is_dir():
            found += sorted(d for d in p.iterdir() if (d / "config.toml").exists())
    return found


# ---------------------------------------------------------------------------- CSV round trip


def write_csvs(runs: list[RunData], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "run",
                "task",
                "condition",
                "seed",
                "peers",
                "learners",
                "steps_per_peer",
                "avg_return",
                "final_return",
                "advice_share",
                "roles",
            ]
        )
        for r in runs:
            w.writerow(
                [
                    r.name,
                    r.task,
                    r.condition,
                    r.seed,
                    r.peers,
                    len(r.curves),
                    r.steps,
                    f"{r.avg_return():.6g}",
                    f"{r.final_return():.6g}",
                    "" if math.isnan(r.advice_share) else f"{r.advice_share:.4g}",
                    " ".join(f"{k}={v}" for k, v in r.roles.items()),
                ]
            )
    with (out / "curves.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "peer", "step", "return"])
        for r in runs:
            for peer, (s, v) in sorted(r.curves.items()):
                w.writerows([r.name, peer, int(a), f"{b:.6g}"] for a, b in zip(s, v, strict=True))
    with (out / "follow.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "group_step", "followed", "rate"])
        for r in runs:
            w.writerows([r.name, int(t), b, "" if math.isnan(x) else f"{x:.4g}"] for t, b, x in r.follow)


def read_csvs(folder: Path) -> list[RunData]:
    runs: dict[str, RunData] = {}
    for row in _read_csv(folder / "summary.csv"):
        roles = dict(kv.split("=", 1) for kv in row.get("roles", "").split() if "=" in kv)
        runs[row["run"]] = RunData(
            name=row["run"],
            task=row["task"],
            condition=row["condition"],
            seed=int(row["seed"]),
            peers=int(row["peers"]),
            steps=int(row["steps_per_peer"]),
            roles=roles,
            advice_share=float(row["advice_share"]) if row.get("advice_share") else math.nan,
        )
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in _read_csv(folder / "curves.csv"):
        points.setdefault((row["run"], row["peer"]), []).append((float(row["step"]), float(row["return"])))
    for (run, peer), pts in points.items():
        arr = np.array(pts)
        runs[run].curves[peer] = (arr[:, 0], arr[:, 1])
    if (folder / "follow.csv").exists():
        for row in _read_csv(folder / "follow.csv"):
            runs[row["run"]].follow.append(
                (float(row["group_step"]), row["followed"], float(row["rate"]) if row["rate"] else math.nan)
            )
    return [r for r in runs.values() if r.curves]


# ---------------------------------------------------------------------------- tables and plots


@dataclass
class Row:
    task: str
    condition: str
    runs: list[RunData]

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)


def group_runs(runs: list[RunData], order: list[str] | None = None) -> list[Row]:
    rows: dict[tuple[str, str], list[RunData]] = {}
    for r in runs:
        rows.setdefault((r.task, r.condition), []).append(r)
    keys = list(rows)
    if order:
        rank = {c: i for i, c in enumerate(order)}
        keys.sort(key=lambda k: (k[0], rank.get(k[1], len(rank)), k[1]))
    else:
        keys.sort()
    return [Row(t, c, sorted(rows[(t, c)], key=lambda r: r.seed)) for t, c in keys]


