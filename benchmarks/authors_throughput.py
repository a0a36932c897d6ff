"""Time the authors' own training loop (kramerlab/PeerLearning, `run_peer.py`), unchanged.

Runs in the authors' venv (gym 0.25, stable-baselines3 1.5; recipe in results/authors-code/README.md
and docs/performance.md), not in peerlearn's, so it imports nothing from peerlearn:

    AUTHORS_PYTHON authors_throughput.py AUTHORS_DIR WARMUP -- <run_peer.py arguments>

Their group trains its peers in turns, one episode-long epoch each, in one process; every env step
of the acting peer calls its callbacks once. This wrapper wraps their `PeerEvalCallback._on_step`
(callbacks.py) to read the clock at every call; nothing in their training is touched. A step counts
once the acting peer has more than WARMUP env steps of its own (SB3 trains after each collection, so
the interval up to the next call holds the gradient steps too). After the run it prints one JSON line:
the agent-steps counted and the seconds between their calls (imports, model construction and every
peer's warm-up excluded; the switch from one peer's turn to the next included, it is their loop).
`peerlearn bench reference --authors DIR --authors-python PY` drives it (benchmarks/bench.py).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time


def main() -> None:
    authors_dir, warmup = sys.argv[1], int(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1:]
    sys.path.insert(0, authors_dir)
    os.chdir(authors_dir)
    import callbacks  # type: ignore[import-not-found]  # their module, found on the path just set
    import torch

    original = callbacks.PeerEvalCallback._on_step
    clock = {"steps": 0, "seconds": 0.0, "previous": 0.0}

    def on_step(self: callbacks.PeerEvalCallback) -> bool:
        result = original(self)
        now = time.perf_counter()
        if clock["previous"] and self.model.num_timesteps > warmup:
            clock["steps"] += 1
            clock["seconds"] += now - clock["previous"]
        clock["previous"] = now
        return bool(result)

    callbacks.PeerEvalCallback._on_step = on_step
    sys.argv = ["run_peer.py", *args]
    runpy.run_path(os.path.join(authors_dir, "run_peer.py"), run_name="__main__")
    if not clock["steps"]:
        raise SystemExit(f"no agent-step ran past the warm-up of {warmup} steps per peer")
    print(json.dumps({"agent_steps": clock["steps"], "seconds": clock["seconds"],
                      "torch_threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
