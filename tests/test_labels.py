"""Peers named with what they are (orchestrator/running/labels.py) in plots and `peerlearn status`:
"peer-0 (DQN learner)", and the trust and follow matrices with peer names over their columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from orchestrator.running.labels import describe, run_labels
from orchestrator.running.plots import choice_figure, write_plots
from orchestrator.running.status import format_status
from peerlearn.v1 import orchestrator_pb2 as pb

pytestmark = pytest.mark.timeout(60)


def test_a_peer_is_described_by_its_handshake() -> None:
    assert describe("sb3.DQN", learns=True) == "DQN learner"
    assert describe("sb3.PPO.frozen", learns=False) == "PPO adviser"
    assert describe("scripted-adversary", learns=False) == "scripted adversary"
    assert describe("tabular-q", learns=True) == "tabular-q learner"  # a peer in another language
    assert describe("sb3.SAC", learns=True, attack="mirror") == "SAC learner, attack mirror"


def _run_dir(tmp_path: Path, versions: bool) -> Path:
    """A finished run's files as the recorder writes them: 2 DQN learners (peer-1 attacking) and a
    scripted expert, two rows of group.csv."""
    run = tmp_path / "run"
    (run / "peers" / "peer-0").mkdir(parents=True)
    (run / "config.toml").write_text('task = "room-6"\npeers = 3\nroles = ["learner", "learner", "expert"]\n'
                                     'attacks = ["", "mirror", ""]\n')
    (run / "learners.toml").write_text('[peer-0]\nalgo = "DQN"\n[peer-1]\nalgo = "DQN"\n')
    if versions:
        peers = [{"peer_id": f"peer-{i}", "implementation": impl, "capabilities": {"learns": learns}}
                 for i, (impl, learns) in enumerate([("sb3.DQN", True), ("sb3.DQN", True), ("scripted-expert", False)])]
        (run / "versions.json").write_text(json.dumps({"peers": peers}))
    names = ["peer-0", "peer-1", "peer-2"]
    header = ["group_step", "time", "sps", *(f"steps/{a}" for a in names),
              *(f"trust/{a}/{b}" for a in names for b in names), *(f"agent_value/{b}" for b in names),
              *(f"follow/{a}/{b}" for a in names for b in names)]
    rows = [[t, 1, 1, t, t, 0, *([200 - t] * 9), 1, 2, 3, *([t] * 9)] for t in (10, 20)]
    (run / "group.csv").write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    (run / "peers" / "peer-0" / "evaluations.csv").write_text("step,mean_return,std_return\n10,1.0,0.5\n20,2.0,0.5\n")
    return run


@pytest.mark.parametrize("versions", [True, False])
def test_plots_name_each_peers_algorithm_and_role(tmp_path: Path, versions: bool) -> None:
    """From versions.json (the handshakes) or, for runs written without it, from config.toml's roles."""
    run = _run_dir(tmp_path, versions)
    assert run_labels(run) == {"peer-0": "peer-0 (DQN learner)", "peer-1": "peer-1 (DQN learner, attack mirror)",
                               "peer-2": "peer-2 (scripted expert)"}
    fig = choice_figure(run / "group.csv")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["trust of peer-0 (DQN learner)", "trust of peer-1 (DQN learner, attack mirror)"]
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert legend == ["peer-0 (DQN learner)", "peer-1 (DQN learner, attack mirror)", "peer-2 (scripted expert)"]
    assert [p.name for p in write_plots(run)] == ["learning_curves.png", "trust.png", "follow_matrix.png"]


def test_status_names_each_peer_and_the_columns_of_trust() -> None:
    peers = [pb.PeerStatus(peer_id="peer-0", state="healthy", steps=10, last_episode_return=math.nan,
                           last_eval_return=3.5, trust=[200, -150.5], follow_counts=[3, 1], following=1,
                           description="DQN learner"),
             pb.PeerStatus(peer_id="peer-1", state="healthy", steps=0, last_episode_return=math.nan,
                           last_eval_return=math.nan, trust=[1, 2], follow_counts=[0, 0], following=-1,
                           description="PPO adviser")]
    text = format_status(pb.GroupStatus(run_name="r", env_id="CartPole-v1", step=10, total_steps=100,
                                        steps_per_second=5, agent_values=[1, 2], peers=peers))
    lines = text.splitlines()
    assert lines[2].startswith("peer-0 (DQN learner)  healthy") and lines[3].startswith("peer-1 (PPO adviser)")
    trust = lines.index("trust of each peer (row) in each peer (column):")
    assert lines[trust + 1].split() == ["peer-0", "peer-1"]
    assert lines[trust + 2].split() == ["peer-0", "200.00", "-150.50"]
    follows = lines.index("who follows whom (share of own steps):")
    assert lines[follows + 1].split() == ["peer-0", "peer-1"]
    assert lines[follows + 2].split() == ["peer-0", "0.75", "0.25"]
