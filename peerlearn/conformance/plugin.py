"""pytest plugin of the conformance kit: the `--peer-address` option (default: $PEERLEARN_CONFORMANCE_ADDRESS),
`--conformance-timeout` (seconds per call), and the `peer` fixture every check talks to."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from peerlearn.conformance import ADDRESS_ENV
from peerlearn.conformance.harness import PeerUnderTest


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


@pytest.fixture(scope="session")
def peer(request: pytest.FixtureRequest) -> Iterator[PeerUnderTest]:
    address = request.config.getoption("--peer-address", default=None) or os.environ.get(ADDRESS_ENV)
    if not address:
        pytest.exit(
            f"conformance: give the peer's address (--peer-address HOST:PORT or ${ADDRESS_ENV})",
            returncode=4,
        )
    timeout = float(request.config.getoption("--conformance-timeout", default=30.0) or 30.0)
    p = PeerUnderTest(address, timeout)
    yield p
    p.channel.close()
