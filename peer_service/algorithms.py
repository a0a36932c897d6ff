"""The off-policy learners a peer can run, and what its critic answers for each (docs/protocol.md,
"What Evaluate's values mean").

Peer learning needs two numbers from a learner's critic: Q(s, a) of a suggested action and V(s) of
a state (docs/algorithm.md, "The value function"). Each SB3 / sb3-contrib algorithm stores its critic
differently, so each gets its pair here:

| algorithm | Q(s, a) | V(s) |
|---|---|---|
| DQN | q_net(s)[a] | max_a Q(s, a) |
| QRDQN | mean over quantiles of quantile_net(s)[:, a] | max_a of that mean |
| SAC | min of the twin critics | Q(s, a') with a' a sample of the actor |
| TQC | mean of all critics' quantiles | the same with a' a sample of the actor |
| CrossQ | min of the critics (eval mode: batch-renorm running statistics) | the same with a' sampled |
| TD3, DDPG | the first critic (the one their actor is trained on) | Q1(s, mu(s)) |

Continuous actions reach the critics in the policy's scaled [-1, 1] space, as in training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

import torch as th

if TYPE_CHECKING:  # for the annotations only: SB3 is imported where an algorithm is used
    from stable_baselines3.common.base_class import BaseAlgorithm

Model = Any  # an SB3 OffPolicyAlgorithm (typed loosely: sb3-contrib's classes share no stricter base)


def _dqn_q(model: Model, obs: th.Tensor) -> th.Tensor:
    return model.q_net(obs)


def _qrdqn_q(model: Model, obs: th.Tensor) -> th.Tensor:
    return model.quantile_net(obs).mean(dim=1)  # (batch, quantiles, actions) -> (batch, actions)


def _min_critics(model: Model, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
    return th.cat(model.critic(obs, actions), dim=1).min(dim=1).values


def _tqc_critic(model: Model, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
    return model.critic(obs, actions).mean(dim=(1, 2))  # (batch, critics, quantiles) -> (batch,)


def _first_critic(model: Model, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
    return model.critic.q1_forward(obs, actions).squeeze(1)


@dataclass(frozen=True)
class Algorithm:
    name: str
    module: str  # where the class lives (sb3-contrib's are imported only when used)
    discrete: bool  # Discrete action spaces (DQN family) or Box (actor-critic family)
    stochastic_actor: bool = False  # SAC family: gSDE and log_std_init apply
    q_table: Callable[[Model, th.Tensor], th.Tensor] | None = None  # discrete: Q of every action
    critic: Callable[[Model, th.Tensor, th.Tensor], th.Tensor] | None = None  # continuous: Q(s, scaled a)

    def load(self) -> type[BaseAlgorithm]:
        try:
            return getattr(import_module(self.module), self.name)
        except ImportError as err:  # sb3-contrib is optional
            raise ValueError(f"algorithm {self.name} needs the package of {self.module.split('.')[0]} "
                             f"(pip install sb3-contrib): {err}") from err

    @th.no_grad()
    def q_values(self, model: Model, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Q of given actions (discrete: action indices; continuous: actions in the scaled space)."""
        if self.q_table is not None:
            return self.q_table(model, obs).gather(1, actions.long().reshape(-1, 1)).squeeze(1)
        assert self.critic is not None
        return self.critic(model, obs, actions)

    @th.no_grad()
    def v_values(self, model: Model, obs: th.Tensor) -> th.Tensor:
        """V(s): the best action's value (discrete) or the value of the actor's own action."""
        if self.q_table is not None:
            return self.q_table(model, obs).max(dim=1).values
        assert self.critic is not None
        return self.critic(model, obs, model.actor(obs))  # SAC family: a sample; TD3/DDPG: mu(s)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("DQN", "stable_baselines3", discrete=True, q_table=_dqn_q),
    Algorithm("QRDQN", "sb3_contrib", discrete=True, q_table=_qrdqn_q),
    Algorithm("SAC", "stable_baselines3", discrete=False, stochastic_actor=True, critic=_min_critics),
    Algorithm("TQC", "sb3_contrib", discrete=False, stochastic_actor=True, critic=_tqc_critic),
    Algorithm("CrossQ", "sb3_contrib", discrete=False, stochastic_actor=True, critic=_min_critics),
    Algorithm("TD3", "stable_baselines3", discrete=False, critic=_first_critic),
    Algorithm("DDPG", "stable_baselines3", discrete=False, critic=_first_critic),
)}


def algorithm(name: str) -> Algorithm:
    """The algorithm called `name` (case-insensitive: "td3" = "TD3", "qr-dqn" = "QRDQN")."""
    key = name.replace("-", "").replace("_", "").upper()
    for algo in ALGORITHMS.values():
        if algo.name.upper() == key:
            return algo
    raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}")
