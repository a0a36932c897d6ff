"""The conformance checks of peerlearn.v1 (docs/protocol.md), run against one live peer over gRPC.

Every check names the call it made and what it expected; the peer's capabilities decide which checks
apply (a check that does not apply is skipped with the reason). Checks run in file order, the files
in the order of their numbers: the Step-before-Reset check (test_1_handshake.py) comes before anything
that Resets the peer. The `peer` fixture and the kit's options are in peerlearn/conformance/plugin.py.
"""
