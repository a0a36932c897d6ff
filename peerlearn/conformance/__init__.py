"""The peerlearn.v1 conformance kit: pytest checks that any peer, in any language, must pass.

Run it against a live peer:

    peerlearn conformance 127.0.0.1:50051            # the CLI
    python -m peerlearn.conformance 127.0.0.1:50051  # the same
    pytest --pyargs peerlearn.conformance.checks -p peerlearn.conformance.plugin --peer-address HOST:PORT

or from Python: `peerlearn.conformance.run("127.0.0.1:50051")` returns pytest's exit code (0 = conformant).

The kit talks to the peer only over gRPC, so it judges a Node, C++ or Python peer alike. The peer's
`capabilities` decide which checks apply: an adviser is never asked to Step, a peer without a critic
(evaluates=false) is never asked to Evaluate (only checked to answer UNIMPLEMENTED). The kit mutates an acting peer
(it Resets, Steps, Saves and Loads it), so point it at a peer that is not training in a group.
It works on a fresh peer and on one that has already stepped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

ADDRESS_ENV = "PEERLEARN_CONFORMANCE_ADDRESS"
CHECKS = Path(__file__).with_name("checks")  # a package: its test_N_*.py files run in order


def run(address: str, extra_pytest_args: Sequence[str] = ()) -> int:
    """Run every check against the peer at `address` ("host:port"); returns pytest's exit code."""
    import pytest

    os.environ[ADDRESS_ENV] = address
    args = [
        str(CHECKS),
        "-p",
        "peerlearn.conformance.plugin",
        f"--peer-address={address}",
        # The kit's own settings, independent of the project it is run from.
        "-c",
        os.devnull,
        "--rootdir",
        str(CHECKS.parent),
        "-p",
        "no:cacheprovider",
        "-o",
        "console_output_style=classic",
        "-rsfE",
        *extra_pytest_args,
    ]
    return int(pytest.main(args))


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="peerlearn conformance", description="Check a live peer against the peerlearn.v1 protocol."
    )
    parser.add_argument("address", help="host:port of the peer")
    parser.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments, e.g. -k suggest -v"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return run(args.address, args.pytest_args)


__all__ = ["ADDRESS_ENV", "CHECKS", "main", "run"]
