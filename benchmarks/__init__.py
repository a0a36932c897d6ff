"""Benchmarks, outside the runtime packages: `peerlearn bench` (bench.py), the authors' code timed beside
ours (bench_authors.py runs it; authors_throughput.py is the timing wrapper run inside their venv) and
one-off studies whose outputs live in results/bench/ (studies/).
"""
