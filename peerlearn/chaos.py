"""A user-space TCP chaos proxy for fault tests and robustness studies.

Put it between the orchestrator and a peer (`ChaosProxy(target).start()` gives a local address) and
change `mode` at any time:
- "pass": forward everything;
- "delay": forward each chunk after `delay_s` (this kernel has no `tc netem`, docs/robustness.md);
- "blackhole": stop forwarding without closing anything, like a link that silently drops packets
  (TCP keeps the bytes; they flow again when the mode goes back to "pass");
- "reset": abort every open connection (RST) and every new one at once;
- "flaky": abort a connection with probability `abort_p` per forwarded chunk;
- "lossy": packet loss as a TCP stream sees it (no netem here): each chunk is "lost" with probability
  `loss_p` and forwarded only after a retransmission timeout, 0.2 s doubling with every further loss in
  a row on that stream (capped at 3.2 s), so the stream stalls as TCP's retransmission backoff does.
Independently of the mode, `stall(k)` freezes only the k-th connection opened through the proxy (0 =
the first), as a TCP stream stuck in retransmission backoff on a lossy link; `unstall(k)` frees it.
Command line: `python -m peerlearn.chaos --target HOST:PORT --listen-port P --mode delay --delay-s 0.2`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import struct

RTO_S, MAX_RTO_S = 0.2, 3.2  # Linux's minimum retransmission timeout, and a cap for the lossy mode
MODES = ("pass", "delay", "blackhole", "reset", "flaky", "lossy")


class ChaosProxy:
    def __init__(self, target: str, mode: str = "pass", delay_s: float = 0.0, abort_p: float = 0.0,
                 seed: int = 0, loss_p: float = 0.0) -> None:
        host, port = target.rsplit(":", 1)
        self.target_host, self.target_port = host, int(port)
        self.mode = mode
        self.delay_s = delay_s
        self.abort_p = abort_p
        self.loss_p = loss_p
        self.rng = random.Random(seed)
        self.server: asyncio.base_events.Server | None = None
        self.address = ""
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0
        self._connection_flowing: list[asyncio.Event] = []  # one per connection, in the order opened

    def set_mode(self, mode: str, delay_s: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        if delay_s is not None:
            self.delay_s = delay_s
        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "reset":
            for w in list(self._writers):
                _abort(w)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.server = await asyncio.start_server(self._handle, host, port)
        self.address = f"{host}:{self.server.sockets[0].getsockname()[1]}"
        return self.address

    async def close(self) -> None:
        for w in list(self._writers):
            _abort(w)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _abort(writer)
            return
        self.connections += 1
        own = asyncio.Event()
        own.set()
        self._connection_flowing.append(own)
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer, own), self._pipe(up_reader, writer, own))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                _abort(w)

    def stall(self, index: int) -> None:
        self._connection_flowing[index].clear()

    def unstall(self, index: int) -> None:
        self._connection_flowing[index].set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, own: asyncio.Event) -> None:
        rto = RTO_S  # this stream's retransmission timeout, backed off while losses come in a row
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                await own.wait()
                if self.mode == "delay" and self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                if self.mode == "lossy":
                    while self.mode == "lossy" and self.rng.random() < self.loss_p:
                        await asyncio.sleep(rto)
                        rto = min(2 * rto, MAX_RTO_S)
                    rto = RTO_S
                if self.mode == "reset" or (self.mode == "flaky" and self.rng.random() < self.abort_p):
                    raise ConnectionResetError("chaos")
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed host or a middlebox reset would."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


async def _main(args: argparse.Namespace) -> None:
    proxy = ChaosProxy(args.target, args.mode, args.delay_s, args.abort_p)
    print(f"chaos proxy {await proxy.start(args.listen_host, args.listen_port)} -> {args.target} ({args.mode})",
          flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True)
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--mode", choices=MODES, default="pass")
    parser.add_argument("--delay-s", type=float, default=0.1)
    parser.add_argument("--abort-p", type=float, default=0.01)
    try:
        asyncio.run(_main(parser.parse_args()))
    except KeyboardInterrupt:
        pass
