"""pytest plugin of the conformance kit: the `--peer-address` option (default: $PEERLEARN_CONFORMANCE_ADDRESS)
and `--conformance-timeout` (seconds per call)."""

from __future__ import annotations

import os

import pytest

from peerlearn.conformance import ADDRESS_ENV


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("peerlearn conformance")
    group.addoption(
        "--peer-address",
        default=os.environ.get(ADDRESS_ENV),
        help=f"host:port of the peer under test (default: ${ADDRESS_ENV})",
    )
    group.addoption(
        "--conformance-timeout",
        type=float,
        default=30.0,
        help="deadline of every call in seconds (RunEvaluation gets 10x)",
    )
