"""Running one group on this machine: checks against the peers' code before start (preflight.py), the
peers started as processes (launcher.py, forkserver.py) or in this process (inproc_client.py), the gRPC
client (grpc_client.py), the wiring of a run (run.py), what a run writes (recorder.py, plots.py), its
live view (progress.py, status.py) and evaluating a finished run (evaluate.py).
"""
