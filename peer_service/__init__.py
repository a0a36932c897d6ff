"""A peer: one RL agent (environment + learner) served over gRPC (`peerlearn.v1.PeerService`)."""
