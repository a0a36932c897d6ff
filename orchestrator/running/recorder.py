"""What a run writes to `runs/<name>/`, in the formats RL users already read.

- `config.toml`, `versions.json`: the resolved configuration, package versions and seed;
- `peers/<peer_id>/monitor.csv` (SB3's r,l,t) and `evaluations.csv` (step, mean, std, returns);
- `group.csv`: trust, agent values and follow counts over time, and what the choice sees: each
  learner's trust normalised as the softmax uses it (`trust_norm/<asker>/<adviser>`) and the mean
  selection probability of every adviser over the decisions since the last row
  (`select_prob/<asker>/<adviser>`, empty when the asker made no decision);
- `decisions.csv`: every decision, one row per candidate: its three normalised components (critic,
  trust, agent value; empty when switched off), its softmax probability and whether it was followed;
- `tb/<peer_id>/`, `tb/group/`: TensorBoard events with CleanRL/SB3 tags (`charts/episodic_return`,
  `charts/SPS`, `losses/*`) plus `peer/trust/*`, `peer/agent_value/*`, `peer/follow_rate/*`,
  `peer/select_prob/*`;
- `plots/*.png` (plots.py) when the run ends.
"""

from __future__ import annotations

import csv
import json
import pickle
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.config import RunConfig, to_toml
from orchestrator.running.spool import DISK_FULL, SpoolFile, TolerantWriter
from peerlearn.messages import EvalResult, StepResult
from peerlearn.settings import task_in_name

if TYPE_CHECKING:
    from orchestrator.loop.group import Group, Member
    from orchestrator.loop.reputation import Decision

COMPONENTS = ("critic", "trust", "agent_values")

PACKAGES = ("peerlearn", "torch", "stable-baselines3", "gymnasium", "mujoco", "numpy", "grpcio", "protobuf")


def new_run_dir(config: RunConfig) -> Path:
    """A fresh folder under `config.out`; an existing name gets a numeric suffix, never reused."""
    root = Path(config.out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = config.name or f"{task_in_name(config.task)}-{config.mode}-s{config.seed}-{stamp}"
    candidate, k = root / base, 1
    while candidate.exists():
        k += 1
        candidate = root / f"{base}-{k}"
    candidate.mkdir(parents=True)
    return candidate


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


class RunRecorder:
    def __init__(self, run_dir: Path, config: RunConfig, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        self.config = config
        self.started = time.time()
        (run_dir / "config.toml").write_text(to_toml(config.to_dict()))
        self._tensorboard = tensorboard
        self._writers: dict[str, Any] = {}
        self._files: dict[str, Any] = {}
        self._group_csv: Any = None
        self._last_loss_step: dict[str, int] = {}
        self._purge: dict[str, int] = {}
        # Selection probabilities summed over the decisions since the last group.csv row, per asker.
        self._prob_sums: dict[int, np.ndarray] = {}
        self._decisions: dict[int, int] = {}

    def start(self, group: Group, resume: dict[str, Any] | None = None) -> None:
        """Create the result files, or (resume) cut them back to their size at the checkpoint and
        append: rows written after the checkpoint are dropped, none are duplicated or missing."""
        sizes: dict[str, int] = resume["files"] if resume else {}
        if resume:
            self.started = time.time() - float(resume["elapsed_s"])
            self._purge = {"group": int(resume["t"])} | {m["name"]: int(m["steps"]) for m in resume["members"]}
            # The selection probabilities of decisions since the last group.csv row (a checkpoint step
            # that is not a log step): the next row averages them as the uninterrupted run would.
            self._prob_sums = {int(k): np.asarray(v).copy() for k, v in resume.get("prob_sums", {}).items()}
            self._decisions = {int(k): int(v) for k, v in resume.get("decisions", {}).items()}
        else:
            info = {"seed": self.config.seed, "versions": versions(),
                    "peers": [{"peer_id": m.name, "address": m.client.address, "language": m.info.language,
                               "implementation": m.info.implementation, "env_id": m.info.env_id,
                               "capabilities": vars(m.info.capabilities)} for m in group.members]}
            (self.run_dir / "versions.json").write_text(json.dumps(info, indent=2))
        for m in group.members:
            peer_dir = self.run_dir / "peers" / m.name
            peer_dir.mkdir(parents=True, exist_ok=True)
            if m.acts:
                header = "#" + json.dumps({"t_start": self.started, "env_id": m.info.env_id}) + "\nr,l,t\n"
                self._open(f"monitor/{m.name}", peer_dir / "monitor.csv", header, sizes)
                self._open(f"evals/{m.name}", peer_dir / "evaluations.csv",
                           "step,time,mean_return,std_return,episodes,exact,returns\n", sizes)
        names = [m.name for m in group.members]
        columns = ["group_step", "time", "sps"]
        columns += [f"steps/{a}" for a in names]
        columns += [f"trust/{a}/{b}" for a in names for b in names]
        columns += [f"agent_value/{b}" for b in names]
        columns += [f"follow/{a}/{b}" for a in names for b in names]
        columns += [f"trust_norm/{a}/{b}" for a in names for b in names]
        columns += [f"select_prob/{a}/{b}" for a in names for b in names]
        self._group_csv = self._open("group", self.run_dir / "group.csv", ",".join(columns) + "\n", sizes)
        self._open("decisions", self.run_dir / "decisions.csv",
                   "group_step,peer,candidate," + ",".join(COMPONENTS) + ",probability,followed\n", sizes)
        self._open("health", self.run_dir / "health.csv", "time,unix_time,group_step,peer,event\n", sizes)

    def _open(self, key: str, path: Path, header: str, sizes: dict[str, int]) -> Any:
        rel = str(path.relative_to(self.run_dir))
        if rel in sizes and path.exists():
            with path.open("r+b") as f:
                f.truncate(sizes[rel])
            handle = SpoolFile(path, "a")
        else:
            handle = SpoolFile(path, "w")  # a full disk delays rows instead of killing the run (spool.py)
            handle.write(header)
        self._files[key] = handle
        return handle

    def checkpoint(self, state: dict[str, Any]) -> bool:
        """Write the orchestrator's state with the result files' sizes, atomically. On a full disk
        nothing is written (False): the previous checkpoint stays the one `--resume` uses."""
        if not all([f.flush() for f in self._files.values()]):  # every file, not only up to the first full one
            print(f"peerlearn: disk full: no checkpoint at group step {state['t']}", file=sys.stderr, flush=True)
            return False
        state = {**state, "elapsed_s": time.time() - self.started,
                 "prob_sums": {k: v.copy() for k, v in self._prob_sums.items()}, "decisions": dict(self._decisions),
                 "files": {str(Path(f.name).relative_to(self.run_dir)): Path(f.name).stat().st_size
                           for f in self._files.values()}}
        target = self.run_dir / "checkpoints" / "orchestrator.pkl"
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_suffix(".tmp")
        try:
            tmp.write_bytes(pickle.dumps(state))
        except OSError as err:
            tmp.unlink(missing_ok=True)
            if err.errno not in DISK_FULL:
                raise
            print(f"peerlearn: disk full: no checkpoint at group step {state['t']}", file=sys.stderr, flush=True)
            return False
        tmp.replace(target)
        return True

    def writer(self, name: str) -> Any:
        if not self._tensorboard:
            return None
        if name not in self._writers:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, only when used

            folder, purge = str(self.run_dir / "tb" / name), self._purge.get(name)
            # On resume, events at or after the checkpoint's step are purged (no duplicated points); a
            # full disk pauses the events instead of ending the run (spool.py).
            self._writers[name] = TolerantWriter(
                lambda first: SummaryWriter(folder, purge_step=purge if first else None))
        return self._writers[name]

    # ------------------------------------------------------------------ events
    def step_result(self, group: Group, m: Member, result: StepResult) -> None:
        if result.episode_return is not None:
            f = self._files[f"monitor/{m.name}"]
            f.write(f"{result.episode_return:.6g},{result.episode_length},{time.time() - self.started:.6g}\n")
            if (w := self.writer(m.name)) is not None:
                w.add_scalar("charts/episodic_return", result.episode_return, m.steps)
                w.add_scalar("charts/episodic_length", result.episode_length, m.steps)
        if result.losses and m.steps - self._last_loss_step.get(m.name, -10**9) >= self.config.log_every:
            self._last_loss_step[m.name] = m.steps
            if (w := self.writer(m.name)) is not None:
                for tag, value in result.losses.items():
                    w.add_scalar(tag, value, m.steps)

    def evaluation(self, group: Group, m: Member, result: EvalResult) -> None:
        f = self._files[f"evals/{m.name}"]
        returns = " ".join(f"{r:.6g}" for r in result.returns)
        f.write(f"{m.steps},{time.time() - self.started:.6g},{result.mean_return:.6g},{result.std_return:.6g},"
                f"{len(result.returns)},{int(result.exact)},{returns}\n")
        f.flush()
        if (w := self.writer(m.name)) is not None:
            w.add_scalar("eval/mean_return", result.mean_return, m.steps)

    def health_event(self, group: Group, m: Member, event: str) -> None:
        """health.csv: every state change of a peer (suspect, ejected, back, rejoined, ...)."""
        f = self._files["health"]
        now = time.time()
        f.write(f"{now - self.started:.4f},{now:.3f},{group.t},{m.name},{event}\n")
        f.flush()

    def decision(self, group: Group, m: Member, decision: Decision) -> None:
        """decisions.csv: one row per candidate of a softmax choice; sums for group.csv's select_prob."""
        rows = csv.writer(self._files["decisions"])
        for k, j in enumerate(decision.candidates):
            parts = [f"{decision.components[c][k]:.4g}" if c in decision.components else "" for c in COMPONENTS]
            # group.t + 1: the step being made, numbered as group.csv numbers the steps it has completed
            rows.writerow([group.t + 1, m.name, group.members[j].name, *parts, f"{decision.probabilities[k]:.4g}",
                           int(j == decision.followed)])
        sums = self._prob_sums.setdefault(m.index, np.zeros(len(group.members)))
        sums[decision.candidates] += decision.probabilities
        self._decisions[m.index] = self._decisions.get(m.index, 0) + 1

    def group_row(self, group: Group) -> None:
        members = group.members
        reputations = group.reputations.snapshot()
        probs = {m.index: self._prob_sums[m.index] / self._decisions[m.index]
                 for m in members if self._decisions.get(m.index)}
        self._prob_sums, self._decisions = {}, {}
        row: list[Any] = [group.t, f"{time.time() - self.started:.4g}", f"{group.steps_per_second:.4g}"]
        row += [m.steps for m in members]
        row += [f"{v:.6g}" for v in reputations.trust.ravel()]
        row += [f"{v:.6g}" for v in reputations.agent_values]
        row += [int(c) for m in members for c in m.follow_counts]
        row += [f"{v:.4g}" for v in reputations.trust_scaled.ravel()]
        row += [(f"{v:.4g}" if m.index in probs else "") for m in members
                for v in probs.get(m.index, np.zeros(len(members)))]
        csv.writer(self._group_csv).writerow(row)
        if (w := self.writer("group")) is not None:
            w.add_scalar("charts/SPS", group.steps_per_second, group.t)
            for m in members:
                w.add_scalar(f"peer/agent_value/{m.name}", reputations.agent_values[m.index], group.t)
        for m in members:
            if not m.acts or (w := self.writer(m.name)) is None:
                continue
            total = max(int(m.follow_counts.sum()), 1)
            for other in members:
                w.add_scalar(f"peer/trust/{other.name}", reputations.trust[m.index, other.index], m.steps)
                w.add_scalar(f"peer/follow_rate/{other.name}", m.follow_counts[other.index] / total, m.steps)
                if m.index in probs:
                    w.add_scalar(f"peer/select_prob/{other.name}", probs[m.index][other.index], m.steps)

    def close(self, group: Group | None = None) -> list[Path]:
        for f in self._files.values():
            f.close()
        for w in self._writers.values():
            w.close()
        from orchestrator.running.plots import write_plots

        try:
            if group is not None:
                np.save(self.run_dir / "follow_matrix.npy", group.follow_matrix())
            return write_plots(self.run_dir)
        except OSError as err:  # the results are in the CSVs; the summary must still be written
            if err.errno not in DISK_FULL:
                raise
            print(f"peerlearn: disk full: no follow matrix or plots ({err})", file=sys.stderr, flush=True)
            return []
