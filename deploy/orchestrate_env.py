"""`peerlearn orchestrate` configured by PEERLEARN_* environment variables (the image's
/usr/local/bin/peerlearn-orchestrate; docker-compose.yml's orchestrator runs it).

`peerlearn orchestrate` itself now reads `PEERLEARN_<FIELD>` for every RunConfig field (peerlearn/cli.py);
this wrapper predates that and is kept for the images built with it: it reads `PEERLEARN_<FIELD>` for every
scalar RunConfig field (`PEERLEARN_RPC_TIMEOUT_S=1`, `PEERLEARN_EJECT_AFTER=3`,
`PEERLEARN_CHECKPOINT_EVERY=200`, ...), ignores empty values (compose's `${VAR:-}`), writes them
over the `--config` file if one is given, and runs `peerlearn <args> --config <merged.toml>`.
Flags on the command line still win over both. Unknown or malformed values stop it with exit 2.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import MISSING, fields
from typing import Any

from orchestrator.config import RunConfig, to_toml
from peerlearn.cli import main as peerlearn_main

PREFIX = "PEERLEARN_"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse(name: str, kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise ValueError(f"{PREFIX}{name.upper()}={text!r}: expected 1/0, true/false")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{PREFIX}{name.upper()}={text!r}: expected {kind.__name__}") from None


def settings_from_env(environ: dict[str, str]) -> dict[str, Any]:
    """RunConfig fields set by non-empty PEERLEARN_<FIELD> variables (scalar fields only)."""
    out: dict[str, Any] = {}
    for f in fields(RunConfig):
        if f.default is MISSING:  # lists and dicts (roles, learner, ...) are not set this way
            continue
        kind = type(f.default)
        if kind not in (bool, int, float, str):
            continue
        text = environ.get(PREFIX + f.name.upper(), "").strip()
        if text:
            out[f.name] = _parse(f.name, kind, text)
    return out


def main(argv: list[str]) -> int:
    try:
        settings = settings_from_env(dict(os.environ))
    except ValueError as err:
        print(f"peerlearn-orchestrate: {err}", file=sys.stderr)
        return 2
    if not settings or "--resume" in argv:  # a resumed run keeps its own config.toml
        return peerlearn_main(argv)
    argv = list(argv)
    base: dict[str, Any] = {}
    if "--config" in argv:
        i = argv.index("--config")
        base = RunConfig.from_toml(argv[i + 1]).to_dict()
        del argv[i:i + 2]
    merged = {**base, **settings}
    RunConfig.from_dict(merged).validate()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="orchestrate-env-", delete=False) as f:
        f.write(to_toml(merged))
    print("peerlearn-orchestrate: from the environment: "
          + ", ".join(f"{k}={v}" for k, v in settings.items()), file=sys.stderr, flush=True)
    return peerlearn_main([*argv, "--config", f.name])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
