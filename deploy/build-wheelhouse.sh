#!/usr/bin/env bash
# Build the wheelhouse the image installs from: a wheel of peerlearn and of every dependency, pinned.
#
#   deploy/build-wheelhouse.sh [DIR]        (default DIR: deploy/wheelhouse, git-ignored)
#
# Runs pip on this machine (Python 3.11, like the image), so the pip configuration here applies:
# `torch==2.13.0` is pinned in the same command, which takes the CPU wheel (unpinned, SB3's torch
# dependency pulls a multi-GB CUDA build). The image build then needs no index at all
# (`pip install --no-index`). DIR/constraints.txt lists name==version of every wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-deploy/wheelhouse}
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "build-wheelhouse: $python is $("$python" -V 2>&1), the image runs Python 3.11; set PYTHON=python3.11" >&2
  exit 2
fi

rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$dir.tmp" ".[mujoco]" "torch==2.13.0"
"$python" - "$dir.tmp" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
pins = sorted({"{}=={}".format(*re.match(r"([^-]+)-([^-]+)-", w.name).groups()).replace("_", "-").lower()
               for w in root.glob("*.whl")})
(root / "constraints.txt").write_text("\n".join(pins) + "\n")
torch = [p for p in pins if p.startswith("torch==")]
if not torch or "+cu" in torch[0] or any(p.startswith("nvidia-") for p in pins):
    sys.exit(f"build-wheelhouse: expected the CPU torch wheel, got {torch} (is torch==2.13.0 a CPU wheel here?)")
print(f"{len(pins)} wheels, {torch[0]}")
PY
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "wheelhouse: $dir"
