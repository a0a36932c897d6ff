"""Security: TLS / mutual TLS with the peer id in the certificate, bearer tokens, plaintext only on
loopback, and overload. Every rejection must reach the orchestrator as an *authentication failure*
(UNAUTHENTICATED / PERMISSION_DENIED, "authentication failed"), never as "peer unavailable".

Servers run in threads of this process (scripted Room peers: no learner to load), on loopback.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orchestrator.config import RunConfig
from orchestrator.loop.client import PeerCallError
from orchestrator.running.grpc_client import GrpcPeerClient
from orchestrator.running.launcher import free_port
from orchestrator.running.run import run_group
from peer_service.peer import Peer, PeerConfig
from peer_service.server import MAX_CONCURRENT_RPCS, serve
from peerlearn.certs import make_certificates
from peerlearn.cli import main as cli_main
from peerlearn.security import ClientSecurity, SecurityError, ServerSecurity
from peerlearn.settings import UserError
from peerlearn.tensors import to_tensor
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import peer_pb2_grpc

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    make_certificates(root / "group", ["peer-0", "peer-1"])
    make_certificates(root / "other", ["peer-0"])  # a CA nobody in the group trusts
    return {"group": root / "group", "other": root / "other"}


@contextmanager
def peer_server(security: ServerSecurity, peer_id: str = "peer-0", role: str = "expert",
                learner_overrides: dict | None = None) -> Iterator[str]:
    """serve() in a thread with its own event loop; yields 127.0.0.1:port; stops it afterwards."""
    peer = Peer(PeerConfig(peer_id=peer_id, role=role, total_steps=1000, learner_overrides=learner_overrides or {}))
    port = free_port()
    box: dict = {}
    ready = threading.Event()

    def run() -> None:
        async def main() -> None:
            box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await serve(peer, port=port, stop=box["stop"], security=security, grace_s=0.2)
        try:
            asyncio.run(main())
        except BaseException as err:  # noqa: BLE001 (surface to the test thread)
            box["error"] = err
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    deadline = time.monotonic() + 10
    while "error" not in box and time.monotonic() < deadline:  # wait until the port accepts
        import socket

        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.02)
    if "error" in box:
        raise box["error"]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        assert not thread.is_alive()


def mtls_server(pki: dict[str, Path], cert: str = "peer-0", peer_id: str = "peer-0") -> ServerSecurity:
    g = pki["group"]
    return ServerSecurity(tls_cert=str(g / f"{cert}.pem"), tls_key=str(g / f"{cert}.key"), tls_ca=str(g / "ca.pem"),
                          require_client_cert=True)


def client(pki: dict[str, Path], ca: str = "group", cert_dir: str = "group", cert: str | None = "orchestrator",
           ) -> ClientSecurity:
    d = pki[cert_dir]
    return ClientSecurity(tls_ca=str(pki[ca] / "ca.pem"), tls_cert=str(d / f"{cert}.pem") if cert else None,
                          tls_key=str(d / f"{cert}.key") if cert else None)


async def _info(address: str, security: ClientSecurity, expected: str | None = "peer-0") -> str:
    c = GrpcPeerClient(address, security=security, expected_peer_id=expected)
    try:
        return (await c.get_info()).peer_id
    finally:
        await c.close()


def _rejected(address: str, security: ClientSecurity, expected: str | None = "peer-0") -> PeerCallError:
    with pytest.raises(PeerCallError) as exc:
        asyncio.run(_info(address, security, expected))
    err = exc.value
    assert err.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"), str(err)
    assert "authentication failed" in str(err) and "unavailable" not in err.code.lower()
    return err


def test_mutual_tls_accepts_the_orchestrator_and_rejects_everyone_else(pki: dict[str, Path]) -> None:
    with peer_server(mtls_server(pki)) as address:
        assert asyncio.run(_info(address, client(pki))) == "peer-0"
        cases = {
            "missing client certificate": _rejected(address, client(pki, cert=None)),
            "client certificate from another CA": _rejected(address, client(pki, cert_dir="other")),
            "another peer's certificate as client": _rejected(address, client(pki, cert="peer-1")),
            "peer certificate of another peer id": _rejected(address, client(pki), expected="peer-1"),
            "server certificate from a CA we do not trust": _rejected(address, client(pki, ca="other")),
            "plaintext client": _rejected(address, ClientSecurity()),
        }
    for what, err in cases.items():
        print(f"  {what:45s} -> {err.code}: {err.message[:110]}")
    assert cases["another peer's certificate as client"].code == "PERMISSION_DENIED"


def test_certificate_and_handshake_must_name_the_same_peer(pki: dict[str, Path]) -> None:
    """A peer holding peer-1's certificate that says it is peer-0 in GetInfo is refused."""
    with peer_server(mtls_server(pki, cert="peer-1"), peer_id="peer-0") as address:
        err = _rejected(address, client(pki), expected="peer-1")
        assert err.code == "PERMISSION_DENIED" and "peer-0" in err.message
        print(f"  certificate peer-1, handshake peer-0 -> {err.code}: {err.message}")


def test_an_outage_is_not_reported_as_an_authentication_failure(pki: dict[str, Path]) -> None:
    address = f"127.0.0.1:{free_port()}"  # nobody listens
    for security in (client(pki), ClientSecurity()):
        with pytest.raises(PeerCallError) as exc:
            asyncio.run(_info(address, security))
        assert exc.value.code == "UNAVAILABLE" and "authentication" not in str(exc.value)


def test_bearer_tokens(tmp_path: Path) -> None:
    token_file = tmp_path / "peer-0.token"
    token_file.write_text("# peer-0\ns3cret-peer-0\n")
    from peerlearn.security import read_tokens

    with peer_server(ServerSecurity(tokens=tuple(read_tokens(str(token_file), env=False)))) as address:
        assert asyncio.run(_info(address, ClientSecurity(token="s3cret-peer-0"))) == "peer-0"
        wrong = _rejected(address, ClientSecurity(token="s3cret-peer-1"))
        missing = _rejected(address, ClientSecurity())
        assert wrong.code == missing.code == "UNAUTHENTICATED"
        print(f"  wrong token -> {wrong.code}: {wrong.message}")
        # liveness probes stay anonymous; the peer's calls do not
        with grpc.insecure_channel(address) as ch:
            assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                health_pb2.HealthCheckResponse.SERVING


def test_plaintext_only_on_loopback_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEERLEARN_ALLOW_INSECURE", raising=False)
    for host in ("0.0.0.0", "10.1.2.3", "peer.example"):
        with pytest.raises(SecurityError, match="refusing to serve plaintext"):
            ServerSecurity().check(host)
        ServerSecurity(allow_insecure=True).check(host)
    for host in ("127.0.0.1", "localhost", "::1", "127.3.2.1"):
        ServerSecurity().check(host)
    with pytest.raises(SecurityError, match="refusing plaintext"):
        ClientSecurity().check("10.1.2.3:50051", None)
    ClientSecurity().check("127.0.0.1:50051", None)
    monkeypatch.setenv("PEERLEARN_ALLOW_INSECURE", "1")
    ServerSecurity().check("0.0.0.0")
    # half a TLS configuration is refused too
    with pytest.raises(SecurityError):
        ServerSecurity(tls_cert="x.pem").check("127.0.0.1")
    with pytest.raises(SecurityError):
        ServerSecurity(require_client_cert=True).check("127.0.0.1")


def test_overload_is_answered_with_resource_exhausted_and_the_server_stays_up() -> None:
    with peer_server(ServerSecurity()) as address:
        states = np.random.default_rng(0).random((4096, 4)).astype(np.float32)
        heavy = pb.SuggestRequest(states=to_tensor(states), deterministic=True)

        async def flood(n: int, request: pb.SuggestRequest = heavy) -> collections.Counter:
            async with grpc.aio.insecure_channel(address) as ch:
                stub = peer_pb2_grpc.PeerServiceStub(ch)

                async def one() -> str:
                    try:
                        await stub.Suggest(request, timeout=60)
                        return "OK"
                    except grpc.aio.AioRpcError as err:
                        return err.code().name
                return collections.Counter(await asyncio.gather(*(one() for _ in range(n))))

        n = 4 * MAX_CONCURRENT_RPCS
        started = time.perf_counter()
        codes = asyncio.run(flood(n))
        print(f"  {n} concurrent Suggest calls (limit {MAX_CONCURRENT_RPCS}) in {time.perf_counter() - started:.1f} s:"
              f" {dict(codes)}")
        assert codes["RESOURCE_EXHAUSTED"] > 0 and codes["OK"] >= MAX_CONCURRENT_RPCS // 2
        assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}
        assert asyncio.run(_info(address, ClientSecurity())) == "peer-0"  # still serving
        # Lock-step-sized calls run inline on the event loop (server.py, INLINE_MAX_ROWS): a flood of
        # them is served one by one, never refused and never an error, and the server stays up.
        small = pb.SuggestRequest(states=to_tensor(states[:4]), deterministic=True)
        started = time.perf_counter()
        codes = asyncio.run(flood(n, small))
        print(f"  {n} concurrent Suggest calls of 4 states in {time.perf_counter() - started:.1f} s: {dict(codes)}")
        assert codes == {"OK": n}
        assert asyncio.run(_info(address, ClientSecurity())) == "peer-0"


def test_certs_command_writes_a_usable_pki(tmp_path: Path) -> None:
    assert cli_main(["certs", "--out", str(tmp_path), "--peers", "peer-0,peer-1,peer-2"]) == 0
    for name in ("ca", "peer-0", "peer-1", "peer-2", "orchestrator"):
        assert (tmp_path / f"{name}.pem").exists()
        assert os.stat(tmp_path / f"{name}.key").st_mode & 0o077 == 0
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "peer-2.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["peer-2"]
    with pytest.raises(SecurityError):
        make_certificates(tmp_path / "bad", ["peer 0"])


@pytest.mark.timeout(180)
def test_a_group_runs_over_mutual_tls_with_tokens(pki: dict[str, Path], tmp_path: Path) -> None:
    """End to end: `orchestrate` two DQN peers over mutual TLS + bearer tokens (PEER_ID@HOST:PORT)."""
    g = pki["group"]
    tokens = []
    for i in range(2):
        (tmp_path / f"peer-{i}.token").write_text(f"token-of-peer-{i}\n")
        tokens.append(str(tmp_path / f"peer-{i}.token"))
    sec = [ServerSecurity(tls_cert=str(g / f"peer-{i}.pem"), tls_key=str(g / f"peer-{i}.key"), tls_ca=str(g / "ca.pem"),
                          require_client_cert=True, tokens=(f"token-of-peer-{i}",)) for i in range(2)]
    overrides = {"learning_starts": 10}
    with peer_server(sec[0], "peer-0", "learner", overrides) as a0, \
            peer_server(sec[1], "peer-1", "learner", overrides) as a1:
        config = RunConfig(peers=2, steps=40, eval_every=40, out=str(tmp_path), name="tls", progress=False,
                           status_port=-1, tls_ca=str(g / "ca.pem"), tls_cert=str(g / "orchestrator.pem"),
                           tls_key=str(g / "orchestrator.key"), token_files=tokens, checkpoint_every=0)
        summary = asyncio.run(run_group(config, [f"peer-0@{a0}", f"peer-1@{a1}"]))
        assert summary.group_steps == 40 and set(summary.final_eval) == {"peer-0", "peer-1"}
        # the tokens are per peer: swapping them is an authentication failure
        config.name, config.token_files = "swapped", list(reversed(tokens))
        with pytest.raises(UserError, match="UNAUTHENTICATED: authentication failed.*check token_files"):
            asyncio.run(run_group(config, [f"peer-0@{a0}", f"peer-1@{a1}"]))


def test_peer_command_refuses_plaintext_off_loopback_with_a_clear_message() -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PEERLEARN_ALLOW_INSECURE"}
    proc = subprocess.run([sys.executable, "-m", "peer_service", "--host", "0.0.0.0", "--port", "0"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "refusing to serve plaintext on 0.0.0.0" in proc.stderr, proc.stderr[-500:]
