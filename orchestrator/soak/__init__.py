"""A soak: a peer group run for a set time while a nemesis injects one random fault every 30-90 s,
then checkers judge the recorded history (docs/robustness.md, "An hour of faults").

`python -m orchestrator.soak run --minutes 60 --seed 0 --out DIR` runs it; `check DIR` judges a
history again. Kept out of the `peerlearn` command: the full-disk fault mounts a tmpfs (root).
Modules: nemesis (the seeded schedule), history (the JSONL log), probes (processes' RSS and file
descriptors, the run's CSVs), driver (the run), checkers (the verdicts), report (markdown).
"""
