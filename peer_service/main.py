"""`peerlearn peer` / `python -m peer_service`: serve one peer, configured by flags or PEERLEARN_* env vars.

Every setting is declared once in peer_service/config.py; from there it gets its flag and its
environment variable (flag `--total-steps` <-> `PEERLEARN_TOTAL_STEPS`), which is how containers
configure peers; a flag given on the command line wins. Every variable that takes effect is printed
at start. A bad value exits with code 2 and one line naming the setting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import MISSING, fields
from typing import Any, NamedTuple

from peer_service.config import PeerConfig, ServeSettings
from peerlearn.settings import (
    ROLES,
    Parser,
    UserError,
    add_flags,
    at_least,
    attribute_docs,
    check_ranges,
    env_name,
    port_taken,
    read_env,
)

# Settings whose flag and variable differ from the field name (kept for compatibility).
PUBLIC = {"learner_overrides": "learner"}
FIELD = {v: k for k, v in PUBLIC.items()}
# The range of each numeric peer setting (checked before the peer starts, like RunConfig's RANGES).
PEER_RANGES = {"port": ("0 (any free port) to 65535", lambda v: 0 <= v <= 65535), "seed": (">= 0", at_least(0)),
               "total_steps": (">= 1", at_least(1)), "torch_threads": (">= 1", at_least(1)),
               "keep_checkpoints": (">= 0", at_least(0))}


class DeclaredSettings(NamedTuple):
    """Every setting of `peerlearn peer`, by its public name (the flag's, less `--`)."""

    types: dict[str, Any]
    helps: dict[str, str]
    defaults: dict[str, Any]


def declared_settings() -> DeclaredSettings:
    """Public name -> type, help and default of every setting of PeerConfig and ServeSettings: what
    the flags, the PEERLEARN_* variables and their checks are made from. Also read outside the peer:
    the launcher keeps a run's peer settings out of its peers' environment, and the CLI warns of
    PEERLEARN_* variables that are no setting."""
    types_: dict[str, Any] = {}
    helps: dict[str, str] = {}
    defaults: dict[str, Any] = {}
    for cls in (PeerConfig, ServeSettings):
        docs = attribute_docs(cls)
        for f in fields(cls):
            name = PUBLIC.get(f.name, f.name)
            types_[name], helps[name] = f.type, docs.get(f.name, "")
            # every setting has a default or a default_factory (dataclasses types the latter as maybe MISSING)
            defaults[name] = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[operator]
    return DeclaredSettings(types_, helps, defaults)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or Parser(prog="peerlearn peer", description=__doc__)
    types_, helps, defaults = declared_settings()
    helps["role"] += f" One of {', '.join(ROLES)}."
    add_flags(p, types_, helps, defaults)
    return p


def resolve(args: argparse.Namespace, environ: dict[str, str] | None = None) -> tuple[PeerConfig, ServeSettings,
                                                                                      dict[str, str]]:
    """Flags > PEERLEARN_* variables > defaults. Also returns the variables that took effect."""
    environ = dict(os.environ if environ is None else environ)
    types_, _, defaults = declared_settings()
    from_env = read_env(types_, environ)
    values: dict[str, Any] = {}
    used: dict[str, str] = {}
    for name in types_:
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = flag
        elif name in from_env:
            values[name] = from_env[name]
            used[env_name(name)] = environ[env_name(name)]
        else:
            values[name] = defaults[name]
    if values["role"] not in ROLES:
        raise UserError(f"role: expected one of {', '.join(ROLES)}, got {values['role']!r}")
    check_ranges(values, PEER_RANGES)
    if values["attack"]:
        from peer_service.attacks import parse_attack

        try:
            parse_attack(values["attack"])
        except ValueError as err:
            raise UserError(f"attack: {err}") from None
    by_field = {FIELD.get(k, k): v for k, v in values.items()}
    peer = PeerConfig(**{f.name: by_field[f.name] for f in fields(PeerConfig)})
    serve = ServeSettings(**{f.name: by_field[f.name] for f in fields(ServeSettings)})
    return peer, serve, used


def peer_argv(config: PeerConfig, skip: tuple[str, ...] = ()) -> list[str]:
    """The flags that make `peerlearn peer` run with exactly `config` (resolve() reads them back): how
    `peerlearn run` hands each started peer its settings. Every field is written, empty ones too, so
    no PEERLEARN_* variable can fill one in; `skip` leaves fields to the environment."""
    import json

    argv: list[str] = []
    for f in fields(PeerConfig):
        value = getattr(config, f.name)
        flag = "--" + PUBLIC.get(f.name, f.name).replace("_", "-")
        if f.name in skip or value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
    return argv


async def _watch_parent(stop: asyncio.Event, interval_s: float = 0.5) -> None:
    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            logging.getLogger("peerlearn.peer").warning("parent %d is gone: stopping", parent)
            stop.set()
            return
        await asyncio.sleep(interval_s)


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except UserError as err:
        if getattr(args, "debug", False):
            raise
        print(f"peerlearn peer: error: {err}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    config, settings, used = resolve(args)
    if used:  # a variable that changes what this peer does is never silent
        print("peerlearn peer: from the environment: " + ", ".join(f"{k}={v}" for k, v in used.items()),
              file=sys.stderr, flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from peerlearn.security import ServerSecurity, read_tokens

    try:
        tokens = tuple(read_tokens(settings.token_file))
    except OSError as err:
        raise UserError(f"token_file: cannot read {settings.token_file}: {err.strerror or err}") from None
    security = ServerSecurity(
        tls_cert=settings.tls_cert, tls_key=settings.tls_key, tls_ca=settings.tls_ca,
        require_client_cert=settings.require_client_cert,
        allowed_clients=tuple(c.strip() for c in (settings.allowed_clients or "").split(",") if c.strip()),
        tokens=tokens, allow_insecure=settings.allow_insecure)
    try:
        security.check(settings.host)  # refuse before the slow start of the learner
    except ValueError as err:
        raise UserError(str(err)) from None
    if settings.port and port_taken(settings.host, settings.port):  # before the learner, and in one line
        raise UserError(f"port: expected a free port on {settings.host}, got {settings.port} (in use or not allowed)")
    import torch

    torch.set_num_threads(settings.torch_threads)  # one thread per peer process: peers share the cores
    from peer_service.peer import Peer
    from peer_service.server import serve

    try:
        peer = Peer(config)
    except ValueError as err:  # an unknown task, learner setting or role/task pair
        raise UserError(str(err)) from None

    async def run() -> None:
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch_parent(stop)) if settings.exit_with_parent else None
        try:
            await serve(peer, host=settings.host, port=settings.port, port_file=settings.port_file, stop=stop,
                        security=security)
        except (OSError, RuntimeError) as err:  # grpc reports a taken port as either
            if "bind" not in str(err).lower():
                raise
            raise UserError(f"port: expected a free port on {settings.host}, got {settings.port} "
                            f"(in use or not allowed)") from None
        if watcher is not None:
            watcher.cancel()

    asyncio.run(run())
    return 0
