"""peerlearn: peer learning (Derstroff et al., AAAI 2024) with every agent a gRPC service.

This package has two floors. On top, what a user calls: the `peerlearn` command (cli/, imported by
nothing) and the Python API (api.py). Underneath, the small helpers both sides of the wire share:
the protocol's generated code (v1/), tensors and messages (tensors.py, messages.py, validation.py),
channel options and security (grpc_options.py, security.py, certs.py), the settings machinery
(settings.py) and fault injection for tests (chaos.py); these import nothing of the orchestrator or
the peer. The conformance kit (conformance/) checks a peer of any language against the protocol.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = "peerlearn.v1"
