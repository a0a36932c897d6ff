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


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse, in one line and at once, an address where nothing answers GetInfo: the kit itself would
    wait 30 s for a channel and then report the missing peer in a pytest session of many lines.
    Any answer, an error status included, lets the kit run and judge it."""
    import grpc

    from peerlearn.settings import UserError
    from peerlearn.v1 import peer_pb2, peer_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            peer_pb2_grpc.PeerServiceStub(channel).GetInfo(peer_pb2.GetInfoRequest(), timeout=timeout)
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                details = " ".join(str(err.details()).split())
                raise UserError(f"no peer answers at {address}: {err.code().name}: {details} (is it running "
                                f"there? `peerlearn probe {address}` asks it too)") from None


def run(address: str, extra_pytest_args: Sequence[str] = ()) -> int:
    """Run every check against the peer at `address` ("host:port"); returns pytest's exit code.
    Nothing answering there is a UserError (settings.py) before any check runs."""
    import pytest

    check_reachable(address)
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
    from peerlearn.settings import UserError

    try:
        return run(args.address, args.pytest_args)
    except UserError as err:
        print(f"peerlearn conformance: error: {err}", file=sys.stderr)
        return 2


__all__ = ["ADDRESS_ENV", "CHECKS", "check_reachable", "main", "run"]
