"""Errors a peer answers with, and the one mapping from them to gRPC status codes.

`status_of` is read by both transports that put a `Peer` behind the protocol: the gRPC server
(peer_service/server.py) answers with its code, and the in-process client
(orchestrator/running/inproc_client.py) raises the same code in its `PeerCallError`, so the group loop
sees one failure the same way over either transport.
"""

from __future__ import annotations

import grpc

from peerlearn.tensors import WireError


class PeerError(Exception):
    """A request the peer refuses; carries the gRPC status code to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status_of(err: Exception) -> tuple[grpc.StatusCode, str] | None:
    """The status code and message a peer answers an error with; None for an error that is no answer
    but a bug (the server logs it and answers INTERNAL; in process it is raised as it is)."""
    if isinstance(err, PeerError):
        return err.code, err.message
    if isinstance(err, WireError):  # a tensor that does not decode, or a malformed request field
        return grpc.StatusCode.INVALID_ARGUMENT, str(err)
    return None
