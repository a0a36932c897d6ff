"""`peerlearn peer` / `python -m peer_service`: serve one peer, configured by flags or PEERLEARN_* env vars.

Every flag has an environment variable (flag `--total-steps` <-> `PEERLEARN_TOTAL_STEPS`), which is how
containers configure peers; a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from peer_service.peer import ROLES, PeerConfig


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"PEERLEARN_{name}", default)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="peerlearn peer", description=__doc__)
    p.add_argument("--peer-id", default=_env("PEER_ID", "peer-0"), help="identity in the group (PEERLEARN_PEER_ID)")
    p.add_argument("--task", default=_env("TASK", "room-6"), help="room-6, room-21, hopper, ... (PEERLEARN_TASK)")
    p.add_argument("--seed", type=int, default=int(_env("SEED", "0") or 0), help="learner seed (PEERLEARN_SEED)")
    p.add_argument("--total-steps", type=int, default=int(_env("TOTAL_STEPS", "10000") or 10000),
                   help="env steps this peer will take; sets SB3 schedules (PEERLEARN_TOTAL_STEPS)")
    p.add_argument("--role", choices=ROLES, default=_env("ROLE", "learner"), help="(PEERLEARN_ROLE)")
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"),
                   help="address to bind; 0.0.0.0 in containers (PEERLEARN_HOST)")
    p.add_argument("--port", type=int, default=int(_env("PORT", "50051") or 50051),
                   help="port; 0 picks a free one (PEERLEARN_PORT)")
    p.add_argument("--port-file", default=_env("PORT_FILE"), help="write the bound port here once serving")
    p.add_argument("--checkpoint-dir", default=_env("CHECKPOINT_DIR"),
                   help="where Save writes (PEERLEARN_CHECKPOINT_DIR)")
    p.add_argument("--learner", default=_env("LEARNER", "{}"),
                   help='JSON overrides of the learner preset, e.g. \'{"learning_starts": 500}\' (PEERLEARN_LEARNER)')
    p.add_argument("--torch-threads", type=int, default=int(_env("TORCH_THREADS", "1") or 1))
    p.add_argument("--overlap-training", action=argparse.BooleanOptionalAction,
                   default=(_env("OVERLAP_TRAINING", "0") or "0").lower() in ("1", "true", "yes"),
                   help="reply to Step before its gradient steps and run them while the group prepares the "
                        "next round; same update order; helps when peers have spare cores or sit across a "
                        "network, not on a saturated machine (PEERLEARN_OVERLAP_TRAINING, default off)")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="stop when the process that started this peer dies (no orphans after kill -9)")
    p.add_argument("--attack", default=_env("ATTACK", ""),
                   help="lie to the group, for robustness studies: mirror, random, garbage, inverse_critic, "
                        "self_promote[:C], subtle_bias[:P], turncoat[:K], collude:PEER[:C] (PEERLEARN_ATTACK)")
    p.add_argument("--collude-board", default=_env("COLLUDE_BOARD", ""),
                   help="with --attack collude: a directory the colluding peers share to tell each other "
                        "their suggestions (PEERLEARN_COLLUDE_BOARD)")
    # --- security (peerlearn/security.py, docs/security.md)
    p.add_argument("--tls-cert", default=_env("TLS_CERT"), help="server certificate, PEM; CN/SAN = peer id")
    p.add_argument("--tls-key", default=_env("TLS_KEY"), help="its private key, PEM")
    p.add_argument("--tls-ca", default=_env("TLS_CA"), help="CA that signs the clients' certificates (mutual TLS)")
    p.add_argument("--require-client-cert", action="store_true",
                   default=(_env("REQUIRE_CLIENT_CERT", "") or "").lower() in ("1", "true", "yes"),
                   help="mutual TLS: only clients with a certificate from --tls-ca (PEERLEARN_REQUIRE_CLIENT_CERT)")
    p.add_argument("--allowed-clients", default=_env("ALLOWED_CLIENTS", "orchestrator"),
                   help="with mutual TLS: comma-separated client certificate names allowed to call "
                        "(PEERLEARN_ALLOWED_CLIENTS)")
    p.add_argument("--token-file", default=_env("TOKEN_FILE"),
                   help="bearer tokens accepted, one per line (also PEERLEARN_TOKEN)")
    p.add_argument("--allow-insecure", action="store_true",
                   default=(_env("ALLOW_INSECURE", "") or "").lower() in ("1", "true", "yes"),
                   help="allow plaintext on a non-loopback host (trusted test networks only; PEERLEARN_ALLOW_INSECURE)")
    return p


async def _watch_parent(stop: asyncio.Event, interval_s: float = 0.5) -> None:
    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            logging.getLogger("peerlearn.peer").warning("parent %d is gone: stopping", parent)
            stop.set()
            return
        await asyncio.sleep(interval_s)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch

    torch.set_num_threads(args.torch_threads)  # one thread per peer process: peers share the cores
    from peer_service.peer import Peer
    from peer_service.server import serve

    config = PeerConfig(peer_id=args.peer_id, task=args.task, seed=args.seed, total_steps=args.total_steps,
                        role=args.role, checkpoint_dir=args.checkpoint_dir,
                        learner_overrides=json.loads(args.learner or "{}"), attack=args.attack or "",
                        overlap_training=args.overlap_training, collude_board=args.collude_board or "")
    from peerlearn.security import ServerSecurity, read_tokens

    security = ServerSecurity(
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_ca=args.tls_ca,
        require_client_cert=args.require_client_cert,
        allowed_clients=tuple(c.strip() for c in (args.allowed_clients or "").split(",") if c.strip()),
        tokens=tuple(read_tokens(args.token_file)), allow_insecure=args.allow_insecure)
    try:
        security.check(args.host)  # refuse before the slow start of the learner
    except ValueError as err:
        print(f"peerlearn peer: {err}", file=sys.stderr)
        return 2
    peer = Peer(config)

    async def run() -> None:
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch_parent(stop)) if args.exit_with_parent else None
        await serve(peer, host=args.host, port=args.port, port_file=args.port_file, stop=stop, security=security)
        if watcher is not None:
            watcher.cancel()

    asyncio.run(run())
    return 0
