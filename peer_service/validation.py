"""Errors a peer answers with: the gRPC status code travels with the message."""

from __future__ import annotations

import grpc


class PeerError(Exception):
    """A request the peer refuses; carries the gRPC status code to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
