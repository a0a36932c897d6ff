"""The group loop and its math: what one lock-step group step does (group.py), the reputations and the
softmax choice (trust.py), the evidence they learn from (evidence.py, buffers.py), peer health
(health.py) and the one interface through which the loop talks to a peer (client.py).

These modules import no peer code and no transport: a `PeerClient` is all they know of a peer.
"""
