"""Who may talk to a peer, and how the orchestrator knows a peer is who it says (docs/security.md).

- TLS: the peer serves with a certificate whose subject CN and DNS SAN are its **peer id**. The
  orchestrator verifies it against the group's CA with the expected peer id as the TLS target name
  (`grpc.ssl_target_name_override`), so a certificate of another peer fails the handshake; then the
  GetInfo handshake must name the same peer id.
- Mutual TLS: the peer also requires a client certificate from the same CA, and only clients whose
  certificate names an allowed identity (default `orchestrator`) may call `PeerService`: another
  peer of the group holds a valid certificate too, but must not drive this peer's Step.
- Bearer tokens: per-peer secrets; the server checks `authorization: Bearer <token>` metadata on
  every call except `grpc.health.v1.Health` (liveness probes stay anonymous).
- Plaintext only on loopback, unless explicitly allowed (`--allow-insecure`,
  `PEERLEARN_ALLOW_INSECURE=1`).
- Auth failures are reported as such: UNAUTHENTICATED (no/wrong token, failed TLS handshake) and
  PERMISSION_DENIED (valid certificate, wrong identity). gRPC reports a failed TLS handshake on the
  client side as UNAVAILABLE, like an outage; `classify_error` tells them apart by the details text.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ORCHESTRATOR_ID = "orchestrator"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
ALLOW_INSECURE_ENV = "PEERLEARN_ALLOW_INSECURE"
TOKEN_ENV = "PEERLEARN_TOKEN"
# Substrings of the details of an UNAVAILABLE status that come from a TLS handshake, not an outage.
_HANDSHAKE_MARKERS = ("handshake", "ssl", "tls", "certificate", "peer name", "x509", "alert", "verification",
                      "unauthenticated")


class SecurityError(ValueError):
    """A configuration that would expose a peer (plaintext off loopback, half a TLS setup, ...)."""


# ---------------------------------------------------------------------------------------- helpers
def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(address: str) -> str:
    """The host part of host:port, [v6]:port, unix:... (unix sockets count as loopback)."""
    if address.startswith("unix:"):
        return "localhost"
    if address.startswith("["):
        return address[1:address.index("]")]
    return address.rsplit(":", 1)[0] if ":" in address else address


def insecure_allowed(flag: bool = False) -> bool:
    return flag or os.environ.get(ALLOW_INSECURE_ENV, "").strip().lower() in ("1", "true", "yes")


def read_tokens(token_file: str | None = None, env: bool = True) -> list[str]:
    """Tokens from a file (one per line, `#` comments) and/or PEERLEARN_TOKEN."""
    tokens: list[str] = []
    if token_file:
        for line in Path(token_file).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(line)
        if not tokens:
            raise SecurityError(f"token file {token_file} holds no token")
    if env and os.environ.get(TOKEN_ENV):
        tokens.append(os.environ[TOKEN_ENV].strip())
    return tokens


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def classify_error(code: str, details: str) -> tuple[str, str]:
    """(code, message) for the orchestrator's report: auth and handshake failures say so."""
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return code, f"authentication failed: {details}"
    lowered = details.lower()
    if code == "UNAVAILABLE" and any(m in lowered for m in _HANDSHAKE_MARKERS):
        return "UNAUTHENTICATED", f"authentication failed (TLS handshake): {details}"
    return code, details


def diagnose_handshake(address: str, security: ClientSecurity, expected_peer_id: str | None,
                       timeout_s: float = 2.0) -> str | None:
    """After an UNAVAILABLE "Socket closed": was it the TLS handshake (the server refused our
    certificate, or wants TLS from a plaintext client)? Returns a description, or None for an outage.

    gRPC does not say (the server just closes the connection), so this opens one TLS connection
    with Python's ssl module and the same credentials and reads the server's alert."""
    import socket
    import ssl

    host, port = split_host(address), int(address.rsplit(":", 1)[1])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_alpn_protocols(["h2"])
    if security.tls:
        ctx.load_verify_locations(security.tls_ca)
        ctx.check_hostname = bool(expected_peer_id)
        if security.tls_cert:
            ctx.load_cert_chain(security.tls_cert, security.tls_key)
    else:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw, \
                ctx.wrap_socket(raw, server_hostname=expected_peer_id or host) as tls:
            if not security.tls:
                return "the peer requires TLS, this client speaks plaintext (configure tls_ca)"
            tls.settimeout(timeout_s)
            try:  # TLS 1.3: the server checks the client certificate after the client's handshake
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                first = tls.recv(1)  # a healthy gRPC server answers with its SETTINGS frame
            except ssl.SSLError as err:
                return f"the peer refused this client's certificate: {err.reason or err}"
            except (TimeoutError, OSError):
                return None
            if not first:
                what = "this client certificate (another CA?)" if security.tls_cert else \
                    "a client without a certificate"
                return f"the peer closed the connection after the TLS handshake (mutual TLS): it refused {what}"
    except ssl.SSLError as err:
        return None if not security.tls else f"TLS handshake failed: {err.reason or err}"
    except OSError:
        return None  # refused, unreachable: an outage
    return None


# ---------------------------------------------------------------------------------------- server side
@dataclass
class ServerSecurity:
    """What `serve()` needs. All empty = plaintext (loopback only unless allow_insecure)."""

    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    require_client_cert: bool = False
    allowed_clients: tuple[str, ...] = (ORCHESTRATOR_ID,)
    tokens: tuple[str, ...] = ()
    allow_insecure: bool = False

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    def check(self, host: str) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SecurityError("TLS needs both --tls-cert and --tls-key")
        if self.require_client_cert and not (self.tls and self.tls_ca):
            raise SecurityError("--require-client-cert needs --tls-cert, --tls-key and --tls-ca "
                                "(the CA of the clients)")
        if not self.tls and not is_loopback(host) and not insecure_allowed(self.allow_insecure):
            raise SecurityError(
                f"refusing to serve plaintext on {host}: anyone on that network could drive this peer. "
                "Use TLS (--tls-cert/--tls-key, see `peerlearn certs`), bind 127.0.0.1, or pass "
                f"--allow-insecure ({ALLOW_INSECURE_ENV}=1) on a trusted test network")

    def credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls:
            return None
        # check() has made sure that a certificate comes with its key
        return grpc.ssl_server_credentials([(_read(self.tls_key), _read(self.tls_cert))],  # type: ignore[list-item]
                                           root_certificates=_read(self.tls_ca),
                                           require_client_auth=self.require_client_cert)

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        check_identity = self.require_client_cert and bool(self.allowed_clients)
        if not self.tokens and not check_identity:
            return []
        return [AuthInterceptor(self.tokens, self.allowed_clients if check_identity else ())]


def _deny_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode,
                  message: str) -> grpc.RpcMethodHandler:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover (an async generator for streaming responses)

    kw = dict(request_deserializer=handler.request_deserializer,
              response_serializer=handler.response_serializer)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream, **kw)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, **kw)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream, **kw)
    return grpc.unary_unary_rpc_method_handler(abort, **kw)


def _wrap_handler(handler: grpc.RpcMethodHandler,
                  check: Callable[[grpc.aio.ServicerContext], Awaitable[None]]) -> grpc.RpcMethodHandler:
    kw = dict(request_deserializer=handler.request_deserializer,
              response_serializer=handler.response_serializer)
    if handler.unary_unary:
        # Under grpc.aio the behaviours are coroutine (or async generator) functions; the stubs type
        # grpc.RpcMethodHandler for the thread-pool server only.
        inner_uu: Any = handler.unary_unary

        async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            return await inner_uu(request, context)
        return grpc.unary_unary_rpc_method_handler(uu, **kw)
    if handler.stream_stream:
        inner_ss: Any = handler.stream_stream

        async def ss(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            async for reply in inner_ss(requests, context):
                yield reply
        return grpc.stream_stream_rpc_method_handler(ss, **kw)
    if handler.unary_stream:
        inner_us: Any = handler.unary_stream

        async def us(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            async for reply in inner_us(request, context):
                yield reply
        return grpc.unary_stream_rpc_method_handler(us, **kw)
    inner_su: Any = handler.stream_unary

    async def su(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(context)
        return await inner_su(requests, context)
    return grpc.stream_unary_rpc_method_handler(su, **kw)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Bearer tokens (constant-time compare) and, with mTLS, the client certificate's identity."""

    def __init__(self, tokens: Iterable[str], allowed_clients: Iterable[str] = ()) -> None:
        self.tokens = [t.encode() for t in tokens]
        self.allowed = {c.encode() for c in allowed_clients}
        self.rejected = 0

    def _token_ok(self, metadata: Iterable[tuple[str, Any]] | None) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                raw = value.encode() if isinstance(value, str) else bytes(value)
                if raw[:7].lower() == b"bearer ":
                    presented = raw[7:].strip()
                    # compare with every token (no early exit) so timing does not tell which matched
                    return any([hmac.compare_digest(presented, t) for t in self.tokens])
        return False

    async def _check_identity(self, context: grpc.aio.ServicerContext) -> None:
        auth = context.auth_context() or {}
        names = set(auth.get("x509_common_name", [])) | set(auth.get("x509_subject_alternative_name", []))
        if not names & self.allowed:
            self.rejected += 1
            shown = ", ".join(sorted(n.decode(errors="replace") for n in names)) or "none"
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"client certificate names {shown}; only "
                                f"{', '.join(sorted(a.decode() for a in self.allowed))} may call this peer")

    async def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
                                ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_PREFIX):
            return handler
        if self.tokens and not self._token_ok(handler_call_details.invocation_metadata):
            self.rejected += 1
            return _deny_handler(handler, grpc.StatusCode.UNAUTHENTICATED,
                                 "missing or wrong bearer token (metadata 'authorization: Bearer ...')")
        if self.allowed:
            return _wrap_handler(handler, self._check_identity)
        return handler


class _Malformed:
    def __init__(self, error: Exception) -> None:
        self.error = error


class MalformedRequestGuard(grpc.aio.ServerInterceptor):
    """Requests that are not even a valid protobuf message are answered INVALID_ARGUMENT (grpc's
    own answer is UNKNOWN "Unexpected DecodeError", with a traceback in the log per request)."""

    async def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
                                ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not handler.unary_unary or handler.request_deserializer is None:
            return handler
        decode, inner = handler.request_deserializer, handler.unary_unary

        def safe_decode(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as err:  # noqa: BLE001 (any decoding failure is the sender's fault)
                return _Malformed(err)

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Malformed):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"malformed request: {type(request.error).__name__}: {request.error}")
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=safe_decode,
                                                   response_serializer=handler.response_serializer)


# ---------------------------------------------------------------------------------------- client side
@dataclass
class ClientSecurity:
    """How the orchestrator connects to one peer."""

    tls_ca: str | None = None  # verify peers against this CA (turns TLS on)
    tls_cert: str | None = None  # the orchestrator's client certificate (mutual TLS)
    tls_key: str | None = None
    token: str | None = None
    allow_insecure: bool = False

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca)

    def check(self, address: str, expected_peer_id: str | None) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SecurityError("a client certificate needs both tls_cert and tls_key")
        if self.tls_cert and not self.tls:
            raise SecurityError("a client certificate needs tls_ca too (the CA that signed the peers)")
        if self.tls and not expected_peer_id:
            raise SecurityError(f"TLS to {address}: give the expected peer id as PEER_ID@{address}, so its "
                                "certificate can be checked against it")
        if not self.tls and not is_loopback(split_host(address)) and not insecure_allowed(self.allow_insecure):
            raise SecurityError(
                f"refusing plaintext to {address} (not loopback): configure tls_ca (and tls_cert/tls_key), "
                f"or set allow_insecure = true ({ALLOW_INSECURE_ENV}=1) on a trusted test network")

    def channel(self, address: str, options: list[tuple[str, Any]], expected_peer_id: str | None,
                ) -> grpc.aio.Channel:
        self.check(address, expected_peer_id)
        interceptors = [TokenClientInterceptor(self.token)] if self.token else None
        if not self.tls:
            return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
        creds = grpc.ssl_channel_credentials(root_certificates=_read(self.tls_ca),
                                             private_key=_read(self.tls_key), certificate_chain=_read(self.tls_cert))
        options = [*options, ("grpc.ssl_target_name_override", expected_peer_id),
                   ("grpc.default_authority", expected_peer_id)]
        return grpc.aio.secure_channel(address, creds, options=options, interceptors=interceptors)


class _TokenMixin:
    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = list(details.metadata or []) + [self.header]
        # grpc.aio takes the metadata as any sequence of pairs (the stubs ask for a grpc.aio.Metadata)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata,  # type: ignore[arg-type]
                                          details.credentials, details.wait_for_ready)


class TokenClientInterceptor(_TokenMixin, grpc.aio.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to every unary call of a channel."""

    async def intercept_unary_unary(self, continuation: Callable, client_call_details: grpc.aio.ClientCallDetails,
                                    request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)
