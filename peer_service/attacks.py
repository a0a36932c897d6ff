"""Attack modes: a peer that lies, for tests and for users' own robustness studies.

`peerlearn peer --attack MODE` (env `PEERLEARN_ATTACK`, `PeerConfig.attack`) wraps the honest
answers of a peer. The peer still learns honestly from what it executes; only what it *tells the
group* is altered:

| mode | Suggest | Evaluate |
|---|---|---|
| `mirror` | moves toward the mirrored goal (the paper's Room adversary) | honest |
| `random` | uniformly random actions | honest |
| `garbage` | invalid replies, cycling: NaN, Inf, wrong shape, out of bounds, wrong dtype | invalid too |
| `inverse_critic` | honest | Q and V negated |
| `self_promote[:C]` | honest | V pushed by +-C so that entries where it followed itself score high |
| `subtle_bias[:P]` | with probability P (default 0.25) the mirror move instead of the honest one | honest |
| `turncoat[:K]` | honest for its first K Suggest calls (default 1000), then `mirror` | honest |
| `collude:PARTNER[:C]` | honest | like `self_promote`, also for entries where it followed PARTNER |

Rows of a Suggest batch that hold the peer's *own* current observation are always answered
honestly (a lying peer does not sabotage itself when the group asks it about its own state).

What a lying evaluator can move (docs/algorithm.md, "Agent values"): its V values enter the trust
and agent value targets of *its own* suggestion-buffer entries, `r + gamma V(s') - V(s)`. Its trust
only steers its own choices; the group's agent values pool every learner's evidence. So `self_promote`
and `collude` recognise, in the `v_states` of an Evaluate, the (s', s) pairs of transitions they
executed (the orchestrator sends `s'` of a draw, then `s` of the same draw, docs/protocol.md), and
answer V(s') = +C, V(s) = -C where the transition followed the peer itself (or its partner): those
entries get a target of about (1 + gamma) C, which inflates that peer's agent value under the
paper's pooled mean. Which peer a transition followed is inferred from the peer's own memory: it
followed itself when the executed action equals what it suggested for its own state this step;
it followed its partner when the partner suggested that action for that state. Colluders share a
board of their suggestions: a dict in this process (in-process groups), or, for colluders in
separate processes, a directory both can read (`--collude-board DIR`; `peerlearn run` gives colluding
peers `RUN_DIR/collusion`): real colluders coordinate out of band, and a shared folder is the
simplest such channel on one machine.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import gymnasium as gym
import numpy as np

from peer_service.envs.room import optimal_action

ATTACKS = ("mirror", "random", "garbage", "inverse_critic", "self_promote", "subtle_bias", "turncoat",
           "collude")
GARBAGE_KINDS = ("nan", "inf", "shape", "bounds", "dtype")
_MEMORY = 4096  # transitions (and board entries) remembered
FOLLOW_STEPS = 10  # the orchestrator's default decision interval (RunConfig.follow_steps)


@dataclass(frozen=True)
class AttackSpec:
    mode: str
    param: float | None = None
    partner: str | None = None

    def __str__(self) -> str:
        parts = [self.mode] + ([self.partner] if self.partner else []) + \
            ([f"{self.param:g}"] if self.param is not None else [])
        return ":".join(parts)


def parse_attack(text: str | None) -> AttackSpec | None:
    """`""`/None = honest; `mirror`, `turncoat:500`, `subtle_bias:0.3`, `self_promote:1000`,
    `collude:peer-2`, `collude:peer-2:1000`. Dashes and underscores are interchangeable in the mode."""
    if not text or not text.strip():
        return None
    parts = text.strip().split(":")
    mode = parts[0].strip().lower().replace("-", "_")
    if mode not in ATTACKS:
        raise ValueError(f"unknown attack {parts[0]!r}; expected one of {', '.join(ATTACKS)}")
    partner = None
    if mode == "collude":
        if len(parts) < 2 or not parts[1]:
            raise ValueError("collude needs a partner: collude:PEER_ID[:C]")
        partner, parts = parts[1], parts[1:]
    param = None
    if len(parts) > 2:
        raise ValueError(f"attack {text!r}: expected MODE[:PARAM]")
    if len(parts) == 2:
        if mode in ("mirror", "random", "garbage", "inverse_critic"):
            raise ValueError(f"attack {mode} takes no parameter")
        try:
            param = float(parts[1])
        except ValueError as err:
            raise ValueError(f"attack {text!r}: parameter {parts[1]!r} is not a number") from err
    return AttackSpec(mode, param, partner)


# Colluders post the actions they suggested, per state, here (one board per process).
_BOARD: dict[str, OrderedDict[bytes, int | bytes]] = {}


class MemoryBoard:
    """The colluders' board in this process (in-process groups). A colluder created anew starts with
    an empty entry of its own: what an earlier group in this process posted under the same peer id
    must not reach its partner in this one (it did: runs in a reused worker process differed from
    fresh ones)."""

    def __init__(self, peer_id: str) -> None:
        _BOARD[peer_id] = OrderedDict()

    def post(self, peer_id: str, entries: list[tuple[bytes, int | bytes]]) -> None:
        board = _BOARD.setdefault(peer_id, OrderedDict())
        for key, action in entries:
            board[key] = action
            board.move_to_end(key)
        while len(board) > _MEMORY:
            board.popitem(last=False)

    def lookup(self, peer_id: str, key: bytes) -> int | bytes | None:
        board = _BOARD.get(peer_id)
        return None if board is None else board.get(key)


class DirectoryBoard:
    """The colluders' board across processes: each colluder appends its suggestions to
    DIR/<peer_id>.board (one `state-hex action` line each, flushed at once) and reads its partner's
    file from where it last stopped. In a lock-step group the partner's Suggest round ends before
    this peer's Step, so the entry is there when the Step looks it up."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._read: dict[str, tuple[int, OrderedDict[bytes, int | bytes]]] = {}

    def post(self, peer_id: str, entries: list[tuple[bytes, int | bytes]]) -> None:
        lines = "".join(f"{key.hex()} {_encode_action(action)}\n" for key, action in entries)
        with (self.directory / f"{peer_id}.board").open("a") as f:
            f.write(lines)

    def lookup(self, peer_id: str, key: bytes) -> int | bytes | None:
        offset, seen = self._read.get(peer_id, (0, OrderedDict()))
        path = self.directory / f"{peer_id}.board"
        if path.exists():
            with path.open() as f:
                f.seek(offset)
                chunk = f.read()
            complete = chunk[:chunk.rfind("\n") + 1]  # a line being written is read next time
            for line in complete.splitlines():
                state_hex, action = line.split(" ", 1)
                seen[bytes.fromhex(state_hex)] = _decode_action(action)
                seen.move_to_end(bytes.fromhex(state_hex))
            while len(seen) > _MEMORY:
                seen.popitem(last=False)
            offset += len(complete.encode())
        self._read[peer_id] = (offset, seen)
        return seen.get(key)


def _encode_action(action: int | bytes) -> str:
    return f"i{action}" if isinstance(action, int) else f"b{action.hex()}"


def _decode_action(text: str) -> int | bytes:
    return int(text[1:]) if text.startswith("i") else bytes.fromhex(text[1:])


def _key(state: np.ndarray) -> bytes:
    return np.ascontiguousarray(state, dtype=np.float32).tobytes()


class Attack:
    """The lying part of one peer. `Peer` calls `suggest`, `evaluate` and `observe_step`."""

    def __init__(self, spec: AttackSpec, peer_id: str, action_space: gym.Space, room_size: int | None,
                 seed: int, board_dir: str | None = None) -> None:
        self.spec = spec
        self.board: MemoryBoard | DirectoryBoard = DirectoryBoard(board_dir) if board_dir else MemoryBoard(peer_id)
        self.peer_id = peer_id
        self.action_space = action_space
        self.room_size = room_size
        self.rng = np.random.default_rng(seed + 7919)
        self.suggest_calls = 0
        self.garbage_replies = 0
        # Transitions this peer executed: (s, s') -> whom it followed each time ("self", "partner",
        # "other", ...). Small worlds repeat transitions (Room: staying on the goal), so a pair is
        # promoted only when every remembered occurrence followed a promoted peer.
        self.transitions: OrderedDict[tuple[bytes, bytes], set[str]] = OrderedDict()
        self._own_suggestion: tuple[bytes, int | bytes] | None = None
        promotes = spec.mode in ("self_promote", "collude")
        self.promote = float(spec.param) if promotes and spec.param else 1000.0

    @property
    def mode(self) -> str:
        return self.spec.mode

    # ------------------------------------------------------------------ Suggest
    def suggest(self, states: np.ndarray, honest: np.ndarray, own: np.ndarray | None) -> np.ndarray:
        """`honest` are the peer's true suggestions; `own` marks rows holding the peer's own state."""
        self.suggest_calls += 1
        if own is not None and own.any() and len(honest):
            self._own_suggestion = (_key(states[own][0]), _action_key(honest[own][0]))
        if self.mode == "collude" or self.mode == "self_promote":
            self.board.post(self.peer_id, [(_key(s), _action_key(a)) for s, a in zip(states, honest, strict=True)])
            return honest
        if self.mode == "garbage":
            return self._garbage_actions(honest)
        lie = self._lie(states, honest)
        if lie is None:
            return honest
        out = np.array(honest, copy=True)
        mask = np.ones(len(out), dtype=bool) if own is None else ~own
        out[mask] = lie[mask]
        return out

    def _lie(self, states: np.ndarray, honest: np.ndarray) -> np.ndarray | None:
        mode = self.mode
        if mode == "mirror" or (mode == "turncoat" and self.suggest_calls > self.turncoat_after):
            return self._mirror(states, honest)
        if mode == "random":
            return self._random(len(states), honest)
        if mode == "subtle_bias":
            p = 0.25 if self.spec.param is None else float(self.spec.param)
            bad = self._mirror(states, honest)
            pick = self.rng.random(len(states)) < p
            if honest.ndim > 1:
                pick = pick.reshape(-1, *([1] * (honest.ndim - 1)))
            return np.where(pick, bad, honest)
        return None

    def _random(self, n: int, honest: np.ndarray) -> np.ndarray:
        space = self.action_space  # drawn from the attack's own seeded generator: runs stay reproducible
        if isinstance(space, gym.spaces.Discrete):
            return (space.start + self.rng.integers(space.n, size=n)).astype(honest.dtype)
        space = cast(gym.spaces.Box, space)  # the spaces a peer carries: Discrete or Box (envs.check_spaces)
        low, high = np.nan_to_num(space.low, neginf=-1.0), np.nan_to_num(space.high, posinf=1.0)
        return self.rng.uniform(low, high, size=(n, *space.shape)).astype(honest.dtype)

    @property
    def turncoat_after(self) -> int:
        return 1000 if self.spec.param is None else int(self.spec.param)

    def _mirror(self, states: np.ndarray, honest: np.ndarray) -> np.ndarray:
        """The bad move: toward the mirrored goal on Room; elsewhere the reflected action."""
        space = self.action_space
        if self.room_size is not None:
            return np.array([optimal_action(s, self.room_size, toward_mirror=True) for s in states],
                            dtype=np.int64)
        if isinstance(space, gym.spaces.Discrete):
            return ((honest - space.start + space.n // 2) % space.n + space.start).astype(honest.dtype)
        space = cast(gym.spaces.Box, space)  # Discrete or Box (envs.check_spaces)
        return np.clip(space.low + space.high - honest, space.low, space.high).astype(honest.dtype)

    def _garbage_actions(self, honest: np.ndarray) -> np.ndarray:
        kind = GARBAGE_KINDS[self.garbage_replies % len(GARBAGE_KINDS)]
        self.garbage_replies += 1
        space = self.action_space
        shape = honest.shape
        if kind == "nan":
            return np.full(shape, np.nan, dtype=np.float32)
        if kind == "inf":
            return np.full(shape, np.inf, dtype=np.float32)
        if kind == "shape":
            return np.zeros((shape[0] + 1, *shape[1:], 2), dtype=honest.dtype)
        if kind == "bounds":
            if isinstance(space, gym.spaces.Discrete):
                return np.full(shape, int(space.start + space.n + 7), dtype=np.int64)
            far = 10.0 * float(np.max(np.abs(np.nan_to_num(cast(gym.spaces.Box, space).high)))) + 10.0
            return np.full(shape, far, dtype=np.float32)
        # dtype: floats for a discrete space, integers for a box
        if isinstance(space, gym.spaces.Discrete):
            return honest.astype(np.float32) + 0.5
        return np.zeros(shape, dtype=np.int64)

    # ------------------------------------------------------------------ Evaluate
    def evaluate(self, v_states: np.ndarray, q: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mode = self.mode
        if mode == "garbage":
            kind = GARBAGE_KINDS[self.garbage_replies % len(GARBAGE_KINDS)]
            self.garbage_replies += 1
            if kind == "nan":
                return np.full_like(q, np.nan), np.full_like(v, np.nan)
            if kind == "inf":
                return np.full_like(q, np.inf), np.full_like(v, -np.inf)
            if kind == "dtype":
                return q.astype(np.int64), v.astype(np.int64)
            return np.zeros(len(q) + 1, np.float32), np.zeros((len(v), 2), np.float32)
        if mode == "inverse_critic":
            return -q, -v
        if mode in ("self_promote", "collude"):
            return q, self._promoted(v_states, v)
        return q, v

    def _promoted(self, v_states: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Find the (s', s) pairs of executed transitions in `v_states` (blocks of s' then s) and
        push the targets of those that followed a promoted peer up by about (1 + gamma) C."""
        keys = [_key(s) for s in v_states]
        promote = {"self", "partner"} if self.mode == "collude" else {"self"}
        out = np.array(v, dtype=np.float32, copy=True)
        m, offset = len(keys), 0
        while offset < m:
            for k in range((m - offset) // 2, 0, -1):
                tags = [self.transitions.get((keys[offset + k + i], keys[offset + i])) for i in range(k)]
                if all(t is not None for t in tags):
                    for i, tag in enumerate(tags):
                        if tag and tag <= promote:
                            out[offset + i], out[offset + k + i] = self.promote, -self.promote
                    offset += 2 * k
                    break
            else:
                offset += 1
        return out

    # ------------------------------------------------------------------ Step
    def observe_step(self, obs: np.ndarray, action: np.ndarray | None, executed: np.ndarray,
                     next_obs: np.ndarray, step_id: int) -> None:
        if self.mode not in ("self_promote", "collude"):
            return
        s, executed_key = _key(obs), _action_key(executed)
        tag = "none"
        # At a decision step (every FOLLOW_STEPS own steps, docs/protocol.md) every adviser was asked,
        # so a matching suggestion proves nothing: leave those entries alone, promote only the sure ones.
        if action is not None and (step_id - 1) % FOLLOW_STEPS == 0:
            tag = "unknown"
        elif action is not None:
            tag = "other"
            if self._own_suggestion is not None and self._own_suggestion == (s, executed_key):
                tag = "self"
            elif self.spec.partner is not None and self.board.lookup(self.spec.partner, s) == executed_key:
                tag = "partner"
        self._own_suggestion = None
        key = (s, _key(next_obs))
        self.transitions.setdefault(key, set()).add(tag)
        self.transitions.move_to_end(key)
        while len(self.transitions) > _MEMORY:
            self.transitions.popitem(last=False)


def _action_key(action: np.ndarray) -> int | bytes:
    a = np.asarray(action)
    if np.issubdtype(a.dtype, np.integer) and a.size == 1:
        return int(a.reshape(()))
    return np.ascontiguousarray(a, dtype=np.float32).tobytes()
