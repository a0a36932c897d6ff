"""Kubernetes manifests (deploy/k8s/): offline schema validation, and the orchestrator's peer list
matches the StatefulSet's stable DNS names."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # gRPC probes are GA since 1.27; backoffLimitPerIndex beta since 1.29


def _render():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("deploy_k8s_render", K8S / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _by_kind(text: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


def test_checked_in_manifests_are_the_renderers_defaults() -> None:
    render = _render()
    for file, make in render.DEFAULTS.items():
        assert (K8S / file).read_text() == make(), f"{file} is stale: run deploy/k8s/render.py defaults"


@pytest.mark.timeout(120)
def test_manifests_validate_offline(tmp_path: Path) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        reason = 'kubernetes-validate is not installed (pip install -e ".[dev]"): k8s manifests NOT validated'
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    render = _render()
    extra = tmp_path / "named-group.yaml"
    extra.write_text(render.group(name="room21-s3", peers=7, task="room-21", steps=150000, seed=3))
    files = sorted(K8S.glob("*.yaml")) + [extra]
    checked = 0
    for file in files:
        for doc in yaml.safe_load_all(file.read_text()):
            if doc:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                checked += 1
    assert checked >= 6


@pytest.mark.parametrize("name,peers", [("", 4), ("room21-s3", 7), ("g", 1)])
def test_peer_list_matches_statefulset_dns(name: str, peers: int) -> None:
    docs = _by_kind(_render().group(name=name, peers=peers))
    service, sts, job = docs["Service"], docs["StatefulSet"], docs["Job"]
    assert service["spec"]["clusterIP"] == "None", "peers need a headless Service for stable DNS names"
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container = sts["spec"]["template"]["spec"]["containers"][0]
    port = container["ports"][0]["containerPort"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["grpc"]["port"] == port, f"{probe} must be a native gRPC probe"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    expected = [f"{sts['metadata']['name']}-{i}.{service['metadata']['name']}:{port}"
                for i in range(sts["spec"]["replicas"])]
    assert len(expected) == peers
    pod = job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[0] == "orchestrate" and args[args.index("--peers") + 1].split(",") == expected
    wait = {e["name"]: e["value"] for e in pod["initContainers"][0]["env"]}
    assert wait["PEERS"].split(",") == expected
    secrets = [v["secret"]["secretName"] for v in sts["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert secrets == ["peerlearn-tls"]


def _sh(script: str, env: dict[str, str]) -> str:
    # Kubernetes turns $$ into $ in command/args before the shell sees them.
    return subprocess.run(["sh", "-c", script.replace("$$", "$")], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, check=True, timeout=10).stdout.strip()


def test_peer_identity_and_seed_from_the_pod_ordinal() -> None:
    sts = _by_kind(_render().group(name="g", peers=3, seed=4))["StatefulSet"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0].replace("exec peerlearn peer", 'echo "$PEERLEARN_PEER_ID $PEERLEARN_SEED"')
    env = {e["name"]: e["value"] for e in container["env"]}
    assert _sh(script, {**env, "HOSTNAME": "g-peer-2"}) == "g-peer-2 4002"  # seed*1000+ordinal


def test_sweep_job_covers_tasks_x_seeds() -> None:
    job = yaml.safe_load(_render().sweep(["room-6", "room-21"], [0, 1, 2], peers=3))
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 6
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    script = container["args"][0].replace("exec peerlearn", "echo peerlearn")
    runs = {_sh(script, {**env, "JOB_COMPLETION_INDEX": str(k)}) for k in range(6)}
    assert len(runs) == 6
    assert {(r.split("--task ")[1].split()[0], r.split("--seed ")[1].split()[0]) for r in runs} == \
        {(t, s) for t in ("room-6", "room-21") for s in ("0", "1", "2")}
    assert all("--peers 3" in r for r in runs)
