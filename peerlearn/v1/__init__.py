"""Generated protobuf/gRPC stubs of the `peerlearn.v1` protocol (made by the build, see setup.py)."""
