"""Channel and server options shared by every peerlearn gRPC endpoint (docs/robustness.md, "Channel settings")."""

from __future__ import annotations

# 16 MiB: a batch of 4096 MuJoCo observations is ~1 MiB; anything far larger is an attack or a bug.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Accept the clients' 10 s keepalive pings even without calls in flight.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.so_reuseport", 0),
]


def channel_options(keepalive_s: float = 10.0, keepalive_timeout_s: float = 8.0,
                    max_reconnect_backoff_s: float = 1.0) -> list[tuple[str, int]]:
    """Client options: keepalive ~10 s with a timeout that survives lossy links and reconnect backoff
    capped near 1 s, so that a healed outage is noticed soon (docs/robustness.md has the measurements
    behind both)."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", int(max_reconnect_backoff_s * 1000)),
        ("grpc.enable_retries", 0),
        # Each channel gets its own TCP connection. With gRPC's default global subchannel pool, a new
        # channel to the same address with the same options silently reuses the old channel's
        # connection, so a "re-dial" or a second connection for hedged calls would ride the same
        # (possibly stalled) TCP stream.
        ("grpc.use_local_subchannel_pool", 1),
    ]
