"""The Ray sweep launcher against a local Ray instance: groups run as Ray tasks, results gathered."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import pytest

from orchestrator.config import RunConfig
from orchestrator.experiments.ray_sweep import sweep_configs, unpack


def test_sweep_configs_cover_the_grid() -> None:
    base = RunConfig(steps=100, peers=2)
    configs = sweep_configs(base, ["room-3", "room-6"], [0, 1], ["peer", "single"])
    assert len(configs) == 8
    assert {c.name for c in configs} == {f"{t}-{m}-s{s}" for t in ("room-3", "room-6") for s in (0, 1)
                                         for m in ("peer", "single")}
    assert all(c.peers == 2 and c.steps == 100 and not c.progress and c.status_port == -1 for c in configs)
    with pytest.raises(ValueError, match="mode must be one of"):
        sweep_configs(base, ["room-3"], [0], ["bogus"])
    with pytest.raises(ValueError, match="must not repeat"):
        sweep_configs(base, ["room-3"], [0, 0], ["peer"])


def test_unpack_never_overwrites(tmp_path: Path) -> None:
    import io
    import tarfile

    src = tmp_path / "src" / "g"
    src.mkdir(parents=True)
    (src / "config.toml").write_text("x = 1\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(src, arcname="g")
    dest = tmp_path / "dest"
    dest.mkdir()
    assert unpack(buffer.getvalue(), dest) == dest / "g"
    assert unpack(buffer.getvalue(), dest) == dest / "g-2"
    assert (dest / "g-2" / "config.toml").read_text() == "x = 1\n"
    assert sorted(p.name for p in dest.iterdir()) == ["g", "g-2"]


@pytest.mark.timeout(240)
def test_sweep_on_local_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        reason = 'ray is not installed (pip install -e ".[ray]"): the Ray sweep was NOT tested'
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    import shutil
    import tempfile

    from orchestrator.experiments.ray_sweep import run_sweep

    # A local Ray leaves nothing behind: no token in ~/.ray, its session folder (short path: Ray's unix
    # sockets must fit in 107 characters) removed at the end.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")

    base = RunConfig(task="room-3", steps=300, peers=2, eval_every=150, log_every=50)
    configs = sweep_configs(base, ["room-3"], [0, 1], ["peer"])
    started = time.monotonic()
    try:
        sweep_dir, results = run_sweep(configs, tmp_path / "runs", "s", cpus_per_group=1,
                                       ray_init={"num_cpus": 2, "object_store_memory": 80 * 1024 * 1024,
                                                 "_temp_dir": ray_tmp})
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    print(f"ray sweep of {len(configs)} groups: {time.monotonic() - started:.1f} s")
    assert sweep_dir == tmp_path / "runs" / "s"
    assert all(r.ok for r in results), [r.error for r in results]
    assert sorted(r.name for r in results) == ["room-3-peer-s0", "room-3-peer-s1"]
    for r in results:
        run = sweep_dir / r.run_dir
        assert (run / "config.toml").exists() and (run / "group.csv").exists()
        assert sorted(p.name for p in (run / "peers").iterdir()) == ["peer-0", "peer-1"]
        assert (run / "peers" / "peer-0" / "monitor.csv").exists()
        assert list((run / "plots").glob("*.png"))
        assert len(r.final_eval) == 2
    index = json.loads((sweep_dir / "sweep.json").read_text())
    assert [g["name"] for g in index["groups"]] == ["room-3-peer-s0", "room-3-peer-s1"]
    assert not index["missing"]
