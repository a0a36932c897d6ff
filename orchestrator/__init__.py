"""The orchestrator: the group's clock and memory (trust, agent values, suggestion buffers).

Three floors, each importing only the ones below it (pyproject.toml's import contracts check this):
  experiments/  grids of runs and the report over them
  running/      one group on this machine: peers started, wired, recorded
  loop/         the group loop and its math, talking to peers through `PeerClient` only
and config.py, the run's settings, under all three.
"""
