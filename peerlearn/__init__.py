"""peerlearn: peer learning (Derstroff et al., AAAI 2024) with every agent a gRPC service."""

__version__ = "0.1.0"
PROTOCOL_VERSION = "peerlearn.v1"
