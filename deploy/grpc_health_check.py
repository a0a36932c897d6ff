"""Container health check: exit 0 when the gRPC server on this host answers grpc.health.v1 SERVING.

    peerlearn-healthcheck [HOST:PORT] [--service NAME] [--timeout S]

The address defaults to 127.0.0.1:$PEERLEARN_PORT (50051). Only grpcio and grpcio-health-checking are
imported (no torch), so a check takes a fraction of a second. Kubernetes uses its native gRPC probe
instead; `peerlearn probe HOST:PORT` is the fuller, interactive check (handshake and one Suggest).
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="peerlearn-healthcheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("address", nargs="?", default=f"127.0.0.1:{os.environ.get('PEERLEARN_PORT', '50051')}")
    p.add_argument("--service", default="", help="health service name ('' = the whole server)")
    p.add_argument("--timeout", type=float, default=2.0)
    args = p.parse_args(argv)
    try:
        with grpc.insecure_channel(args.address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    except grpc.RpcError as err:
        print(f"{args.address}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
