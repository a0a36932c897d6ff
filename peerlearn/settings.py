"""Settings as text: one parser per type for flags, PEERLEARN_* variables and TOML values, and the
user error they raise.

Stdlib only and cheap to import: `peerlearn --help` builds its parsers from here without loading
torch, gRPC or NumPy. Every message names the setting, what was expected and what came, in one line,
because the CLI prints it as the whole answer to a user error (exit 2, no traceback unless --debug).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

ENV_PREFIX = "PEERLEARN_"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage and all is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UserError(ValueError):
    """A mistake in what the user gave (a value, a key, a file, a port): reported in one line, exit 2.

    A ValueError, so code that validated with ValueError before still catches it."""


class RunStopped(RuntimeError):
    """A run that could not go on (too few usable acting peers for too long): its results so far are
    written; reported in one line, exit 1."""


class RunInterrupted(RunStopped):
    """A run stopped by Ctrl-C or SIGTERM: reported in one line that says how to continue it, exit 130
    (128 + SIGINT, as a shell reports a command that Ctrl-C ended)."""


def at_least(low: float) -> Callable[[float], bool]:
    return lambda v: math.isfinite(v) and v >= low


def above(low: float) -> Callable[[float], bool]:
    return lambda v: math.isfinite(v) and v > low


def check_ranges(values: Mapping[str, Any], ranges: Mapping[str, tuple[str, Callable[[float], bool]]]) -> None:
    """Each numeric setting within its range ({name: (what it must be, test)}), else a UserError that
    names it: a bad value stops a run or a peer before it starts, not in its middle."""
    for name, (expected, within) in ranges.items():
        if name in values and not within(values[name]):
            raise UserError(f"{name} must be {expected}, got {values[name]}")


def unknown_names(unknown: list[str], known: set[str] | list[str]) -> str:
    """The unknown names, each with the known one it most likely misspells: "stpes (did you mean steps?)"."""
    import difflib

    def hint(name: str) -> str:
        close = difflib.get_close_matches(name, list(known), n=1)
        return f"{name} (did you mean {close[0]}?)" if close else name

    return ", ".join(hint(name) for name in unknown)


# PEERLEARN_* variables the project reads that are no setting of a run or a peer, with who reads them:
# the warning about variables that match nothing (unknown_variables) must never name these.
OWN_VARIABLES = (
    "PEERLEARN_FORK_SERVER",  # orchestrator/running/launcher.py: 0 starts each peer in its own interpreter
    "PEERLEARN_TOKEN",  # peerlearn/security.py: a bearer token given without a file
    "PEERLEARN_INLINE_CALLS",  # peer_service/server.py: 0 sends every call to the worker thread (an A/B)
    "PEERLEARN_CONFORMANCE_ADDRESS",  # peerlearn/conformance: the peer under test
    "PEERLEARN_PROTO_DIR",  # peers/node: where the .proto files are
    "PEERLEARN_IMAGE", "PEERLEARN_RESULTS", "PEERLEARN_RUN_NAME",  # docker-compose.yml's own (deploy/compose.py)
    # the test suite's switches (tests/): a CLI the tests start must not print a line more because of them
    "PEERLEARN_RECORD_TRAJECTORY", "PEERLEARN_TEST_MARK", "PEERLEARN_NETNS_TESTS", "PEERLEARN_NETNS_AB",
    "PEERLEARN_NETNS_LOSS_S", "PEERLEARN_SKIP_DOCKER_E2E", "PEERLEARN_DOCKER_TMPFS", "PEERLEARN_SOAK_MINUTES",
)


def unknown_variables(settings: Iterable[str], environ: Mapping[str, str] | None = None) -> str | None:
    """One warning line for the non-empty PEERLEARN_* variables that match none of `settings` (names of
    settings) nor OWN_VARIABLES, each with the name it most likely misspells; None when there are none.
    A misspelt variable would otherwise be ignored without a word (a run with the default steps)."""
    environ = os.environ if environ is None else environ
    known = {env_name(name) for name in settings} | set(OWN_VARIABLES)
    unknown = sorted(k for k, v in environ.items() if k.startswith(ENV_PREFIX) and v.strip() and k not in known)
    if not unknown:
        return None
    verb = "matches no setting and is" if len(unknown) == 1 else "match no setting and are"
    return f"peerlearn: {unknown_names(unknown, known)} {verb} ignored"


def port_taken(host: str, port: int) -> bool:
    """Whether another socket holds `host:port`: found before anything slow starts, and without the log
    line gRPC's C core prints when its own bind fails. SO_REUSEADDR as servers bind: a port that only
    has connections in TIME_WAIT (a restarted peer's) is free. A host that does not resolve is left to
    the real bind to report."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError):
        return False
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            return err.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def task_in_name(task: str) -> str:
    """The task as part of a folder or run name: a user's `module:EnvId` by its EnvId (a colon in a path
    breaks Windows, scp and PATH-like lists), a namespace's slash as an underscore (no nested folder)."""
    return task.rpartition(":")[2].replace("/", "_")


def env_name(setting: str) -> str:
    """The environment variable of a setting: `rpc_timeout_s` <-> `PEERLEARN_RPC_TIMEOUT_S`."""
    return ENV_PREFIX + setting.upper()


def flag_name(setting: str) -> str:
    """The command-line flag of a setting: `rpc_timeout_s` <-> `--rpc-timeout-s`."""
    return "--" + setting.replace("_", "-")


def parse_bool(text: str, where: str) -> bool:
    if text.strip().lower() in TRUE:
        return True
    if text.strip().lower() in FALSE:
        return False
    raise UserError(f"{where}: expected true/false (1/0, yes/no), got {text!r}")


def parse_int(text: str, where: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UserError(f"{where}: expected an integer, got {text!r}") from None


def parse_float(text: str, where: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise UserError(f"{where}: expected a number, got {text!r}") from None


def parse_list(text: str, where: str) -> list[str]:
    """`a,b,,c` (empty entries kept: `,,mirror` = two honest peers and a mirror), or a JSON/TOML
    array `["a", "b"]` for entries that contain commas (shell commands)."""
    if text.strip().startswith("["):
        value = _structured(text, where, "a list")
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {text!r}")
        return [str(v) for v in value]
    return [v.strip() for v in text.split(",")] if text.strip() else []


def parse_table(text: str, where: str) -> dict[str, Any]:
    """A JSON object `{"learning_starts": 500}` or a TOML inline table `{learning_starts = 500}`."""
    value = _structured(text, where, 'a table such as {"learning_starts": 500}')
    if not isinstance(value, dict):
        raise UserError(f'{where}: expected a table such as {{"learning_starts": 500}}, got {text!r}')
    return value


def _structured(text: str, where: str, expected: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        raise UserError(f"{where}: expected {expected}, got {text!r}") from None


def parser_for(annotation: Any) -> Callable[[str, str], Any]:
    """The text parser of a type annotation (str, int, float, bool, list[str], dict[str, Any])."""
    if isinstance(annotation, str):  # `from __future__ import annotations`: resolve the simple spellings
        annotation = annotation.removesuffix(" | None")
        annotation = {"str": str, "int": int, "float": float, "bool": bool}.get(annotation, annotation)
        if isinstance(annotation, str):
            annotation = list if annotation.startswith("list") else dict if annotation.startswith("dict") else str
    origin = typing.get_origin(annotation) or annotation
    if origin in (types.UnionType, typing.Union):  # `str | None`: the non-None part
        origin = next(a for a in typing.get_args(annotation) if a is not type(None))
    return {bool: parse_bool, int: parse_int, float: parse_float, list: parse_list, dict: parse_table}.get(
        origin, lambda text, where: text)


def check_type(value: Any, annotation: Any, where: str) -> Any:
    """A value read from TOML, checked against its field's type (ints are accepted for floats)."""
    kind = parser_for(annotation)
    kinds: dict[Callable[[str, str], Any], tuple[type | tuple[type, ...], str]] = {
        parse_bool: (bool, "true or false"), parse_int: (int, "an integer"), parse_float: ((int, float), "a number"),
        parse_list: (list, "a list"), parse_table: (dict, "a table")}
    expected = kinds.get(kind, (str, "a string"))
    ok = isinstance(value, expected[0]) and not (kind is not parse_bool and isinstance(value, bool))
    if not ok:
        raise UserError(f"{where}: expected {expected[1]}, got {value!r}")
    return float(value) if kind is parse_float else value


def argparse_type(annotation: Any, flag: str) -> Callable[[str], Any]:
    """An argparse `type=` that reports a bad value in the one-line form (argparse adds the flag)."""
    parse = parser_for(annotation)

    def convert(text: str) -> Any:
        try:
            return parse(text, flag)
        except UserError as err:
            # argparse turns ValueError into "invalid value"; ArgumentTypeError keeps the message.
            raise argparse.ArgumentTypeError(str(err).split(": ", 1)[1]) from None

    convert.__name__ = getattr(annotation, "__name__", str(annotation))
    return convert


def read_env(names: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings given as non-empty PEERLEARN_<NAME> variables, parsed by their type (`names`: setting
    name -> annotation). Empty values are ignored (docker compose's `${VAR:-}`)."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, annotation in names.items():
        text = environ.get(env_name(name), "")
        if text.strip():
            out[name] = parser_for(annotation)(text, env_name(name))
    return out


# Roles a Python peer can take (peer_service/peer.py); here so that parsers and the run's validation
# know them without importing the learner stack.
# learner: an SB3 off-policy learner (from scratch or continuing a pretrained zip); adviser: a frozen
# pretrained model that only suggests; expert / adversary: scripted Room advisers.
ROLES = ("learner", "adviser", "expert", "adversary")


def attribute_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string literal under it): the help of its flag. Read from
    the class's source because Python keeps no attribute docstrings at run time."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    out: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            out[node.target.id] = " ".join(after.value.value.split())
    return out


def add_flags(parser: Any, types_: Mapping[str, Any], helps: Mapping[str, str], defaults: Mapping[str, Any]) -> None:
    """A flag for every setting that `parser` has no flag for yet (hand-made aliases such as
    `--no-critic` stay): `--name VALUE`, or `--name/--no-name` for booleans. Flags default to None,
    so the caller can tell "not given" from a value and layer defaults < TOML < environment < flags."""
    taken = set(parser._option_string_actions)  # noqa: SLF001 - argparse has no public lookup
    for name, annotation in types_.items():
        flag = flag_name(name)
        if flag in taken or "--no-" + flag[2:] in taken:  # the command's own flag of that name wins
            continue
        default = defaults.get(name)
        shown = "" if default in (None, "", [], {}) else f"; default {default}"
        help_text = f"{helps.get(name, name.replace('_', ' '))} ({env_name(name)}{shown})".replace("%", "%%")
        if parser_for(annotation) is parse_bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=name, type=argparse_type(annotation, flag), default=None,
                                metavar=name.upper(), help=help_text)
