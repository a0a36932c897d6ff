"""Static checks of docker-compose.yml: the generator, the Compose Specification schema,
`docker-compose config -q`, healthchecks and the orchestrator's dependencies on every peer."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"


def loud_skip(reason: str) -> None:
    warnings.warn(reason, stacklevel=2)
    pytest.skip(reason)


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("deploy_compose", ROOT / "deploy" / "compose.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def test_compose_file_is_the_generators_output() -> None:
    assert COMPOSE.read_text() == _generator().render(4), \
        "docker-compose.yml is stale: python3 deploy/compose.py --peers 4 -o docker-compose.yml"


@pytest.mark.parametrize("n", [1, 4, 9])
def test_group_structure(n: int) -> None:
    doc = yaml.safe_load(_generator().render(n))
    assert "name" not in doc, "compose v1.29 rejects a top-level name:"
    services = doc["services"]
    peers = sorted((s for s in services if s.startswith("peer-")), key=lambda s: int(s.split("-")[1]))
    assert peers == [f"peer-{i}" for i in range(n)]
    for i, p in enumerate(peers):
        svc = services[p]
        check = svc["healthcheck"]["test"]
        assert check[0] == "CMD" and "peerlearn-healthcheck" in check[-1]
        assert svc["environment"]["PEERLEARN_PEER_ID"] == p
        assert svc["environment"]["PEERLEARN_SEED"] == f"${{PEERLEARN_SEED:-0}}{i:03d}"  # seed*1000+i as text
        assert svc["networks"] == ["group"]
    orch = services["orchestrator"]
    for target, cond in orch["depends_on"].items():
        assert target in services, f"depends_on names a missing service {target}"
        assert cond == {"condition": "service_healthy"}
    assert set(orch["depends_on"]) == set(peers)
    command = orch["command"]
    addresses = command[command.index("--peers") + 1].split(",")
    assert addresses == [f"{p}:{services[p]['environment']['PEERLEARN_PORT']}" for p in peers]
    assert doc["networks"]["group"]["internal"] is True
    assert "results" in doc["volumes"] and orch["volumes"] == ["${PEERLEARN_RESULTS:-results}:/results"]
    # exactly one service builds the image; every service runs that image
    assert [s for s in services if "build" in services[s]] == ["peer-0"]
    assert services["peer-0"]["build"]["network"] == "none", "the image must build without network access"
    assert len({services[s]["image"] for s in services}) == 1


def test_compose_spec_schema() -> None:
    tool = _tool("check-jsonschema")
    if not tool:
        loud_skip('check-jsonschema is not installed (pip install -e ".[dev]"): compose schema NOT checked')
    result = subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("env", [{}, {"PEERLEARN_RESULTS": "./runs", "PEERLEARN_TASK": "room-21"}])
def test_docker_compose_config(tmp_path: Path, env: dict[str, str]) -> None:
    tool = shutil.which("docker-compose")
    if not tool:
        loud_skip("docker-compose is not installed (apt-get install docker-compose): "
                  "`docker-compose config -q` NOT run")
    import os

    for file in (COMPOSE, tmp_path / "docker-compose.8.yml"):
        if file != COMPOSE:
            file.write_text(_generator().render(8))
        result = subprocess.run([tool, "--project-directory", str(ROOT), "-f", str(file), "config", "-q"],
                                capture_output=True, text=True, timeout=60, env={**os.environ, **env},
                                cwd=ROOT)
        assert result.returncode == 0, result.stderr
