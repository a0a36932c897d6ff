"""Session fixtures that build the non-Python peers (peers/node, peers/cpp) once per test session.

A missing tool skips the tests that need it with a loud reason; CI installs the tools (.ci/run,
SYSTEM_PACKAGES), so there they build and run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "peers" / "node"
CPP_DIR = ROOT / "peers" / "cpp"
CPP_BINARY = CPP_DIR / "build" / "peerlearn-cpp-peer"


def _skip_loudly(reason: str) -> None:
    print(f"\nSKIPPING: {reason}")
    pytest.skip(f"NOT RUN: {reason}")


@pytest.fixture(scope="session")
def node_peer() -> Path:
    """peers/node with its dependencies installed (`npm ci` when node_modules is missing)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            _skip_loudly(f"`{tool}` is not installed: the Node peer cannot run (apt-get install nodejs npm)")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        _skip_loudly(f"node {version} is too old for @grpc/grpc-js 1.14 (needs >= 18)")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            _skip_loudly(f"`npm ci` in peers/node failed (registry unreachable?):\n{proc.stderr[-2000:]}")
    return NODE_DIR


@pytest.fixture(scope="session")
def cpp_peer() -> Path:
    """peers/cpp built with `make -C peers/cpp` (Debian libgrpc++-dev + protobuf-compiler-grpc)."""
    tools = ("make", "g++", "protoc", "grpc_cpp_plugin", "pkg-config")
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing and subprocess.run(["pkg-config", "--exists", "grpc++", "protobuf"]).returncode != 0:
        missing.append("libgrpc++-dev (pkg-config grpc++)")
    if missing:
        _skip_loudly(f"cannot build the C++ peer, missing {', '.join(missing)} "
                     "(apt-get install -y g++ make pkg-config libgrpc++-dev protobuf-compiler-grpc)")
    proc = subprocess.run(["make", "-C", str(CPP_DIR)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"`make -C peers/cpp` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert CPP_BINARY.exists(), f"the build did not produce {CPP_BINARY.relative_to(ROOT)}"
    return CPP_BINARY
