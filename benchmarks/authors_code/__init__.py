"""The authors' code (kramerlab/PeerLearning, commit cc4d51d) on Room-21, beside peerlearn's runs.

`run.sh` runs their `run_peer.py` unchanged in their own venv through `run_exact_eval.py` (which
therefore imports nothing of peerlearn), `to_runs.py` turns its CSVs into run folders that
`peerlearn report` and the results page read, `summarize.py` is the older stand-alone table. The
runs themselves are data and stay in results/ (results/authors-code/README.md, the recipe).
"""
