"""DefaultDQNRLModule: Q-values over the default encoder (dueling optional), epsilon-greedy
exploration, greedy inference; target networks are a separate params pytree."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp

from jaxrl_modules.apis import InferenceOnlyAPI, QNetAPI, TargetNetworkAPI
from jaxrl_modules.columns import Columns
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.models import Encoder, check_observation_space, make_head, refuse_unused_model_fields
from jaxrl_modules.rl_module import RLModule
from jaxrl_modules.validation import boolean, schedule

QF_PREDS = "qf_preds"
QF_NEXT_PREDS = "qf_next_preds"
QF_TARGET_NEXT_PREDS = "qf_target_next_preds"


@dataclasses.dataclass(frozen=True)
class DQNModelConfig(DefaultModelConfig):
    """DefaultModelConfig plus the DQN settings RLlib auto-includes into the model config, with
    RLlib's defaults, declared here only (DQNConfig reads its defaults from these fields):
    `double_q` (True), `dueling` (True) and `epsilon`, the exploration schedule
    [(0, 1.0), (10000, 0.05)] of (lifetime env steps, epsilon) pairs (a bare number is a constant
    schedule; stored as a tuple of (t, v) pairs)."""

    double_q: bool = True
    dueling: bool = True
    epsilon: Any = ((0, 1.0), (10000, 0.05))

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "double_q", boolean()("double_q", self.double_q))
        object.__setattr__(self, "dueling", boolean()("dueling", self.dueling))
        object.__setattr__(self, "epsilon", tuple(schedule(0, 1)("epsilon", self.epsilon)))


def piecewise_linear(schedule: Any, t: jax.Array) -> jax.Array:
    """RLlib's piecewise-linear schedule [(t0, v0), (t1, v1), ...], holding the last value."""
    ts = jnp.asarray([float(p[0]) for p in schedule])
    vs = jnp.asarray([float(p[1]) for p in schedule])
    return jnp.interp(jnp.asarray(t, jnp.float32), ts, vs)


class DefaultDQNRLModule(RLModule, QNetAPI, TargetNetworkAPI, InferenceOnlyAPI):
    """`encoder`, advantage head `af` and (dueling) value head `vf`. Its model config is a
    `DQNModelConfig` (`double_q`, `dueling`, `epsilon` beside the DefaultModelConfig fields, as
    RLlib's DQN auto-includes them): a dict, None or a DefaultModelConfig given to the
    constructor is parsed into one once, when the module is constructed (clones carry it). A
    subclass that reads more settings sets `model_config_class` to a subclass of DQNModelConfig."""

    model_config_class: ClassVar[type] = DQNModelConfig
    # DefaultModelConfig fields this module does not read: refused unless at their defaults (a subclass
    # that reads one drops it from this dict).
    unused_model_fields: ClassVar[dict] = {
        "free_log_std": "DQN's heads output Q-values: there is no Gaussian policy whose log-std could be free",
        "log_std_clip_param": "DQN's heads output Q-values: there is no Gaussian log-std to clip",
        "vf_share_layers": "DQN's advantage (af) and value (vf) heads always share its one encoder; there is no "
                           "separate value-function encoder",
    }

    def __post_init__(self) -> None:
        super().__post_init__()  # RLModule's parses model_config into a model_config_class, once
        refuse_unused_model_fields(self.model_config, type(self))

    @nn.nowrap
    def config(self) -> DQNModelConfig:
        return self.model_config

    def setup(self) -> None:
        super().setup()
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError(f"DefaultDQNRLModule needs a Discrete action space; got {self.action_space}")
        check_observation_space(self.observation_space)
        cfg = self.config()
        self.encoder = Encoder(tuple(self.observation_space.shape), cfg)
        self.af = make_head(cfg, int(self.action_space.n))
        if cfg.dueling:
            self.vf = make_head(cfg, 1)

    @nn.nowrap
    def get_non_inference_attributes(self) -> list[str]:
        return []

    def _q(self, obs: jax.Array) -> jax.Array:
        emb, _ = self.encoder(obs)
        adv = self.af(emb)
        if not self.config().dueling:
            return adv
        return self.vf(emb) + adv - adv.mean(axis=-1, keepdims=True)

    @nn.nowrap
    def action_start(self) -> int:
        """The Discrete space's `start`: Q column i is the action `start + i`."""
        return int(self.action_space.start)

    def _forward_inference(self, batch: dict, **kwargs: Any) -> dict:
        return {Columns.ACTIONS: jnp.argmax(self._q(batch[Columns.OBS]), axis=-1) + self.action_start()}

    def _forward_exploration(self, batch: dict, t: Any = 0, **kwargs: Any) -> dict:
        """Epsilon-greedy with epsilon = schedule(t), t the lifetime env steps: with probability
        epsilon a uniform action (the greedy one included), else the first argmax of Q.

        Not `distrax.EpsilonGreedy`: it spreads the greedy mass over all tied maxima, where
        RLlib (torch `argmax`) and our `_forward_inference` take the first; without ties the two
        distributions are the same (greedy 1 - eps + eps/n, every other action eps/n)."""
        q = self._q(batch[Columns.OBS])
        eps = piecewise_linear(self.config().epsilon, t)
        k_coin, k_act = jax.random.split(self.make_rng("action"))
        random_actions = jax.random.randint(k_act, q.shape[:-1], 0, q.shape[-1])
        explore = jax.random.uniform(k_coin, q.shape[:-1]) < eps
        return {Columns.ACTIONS: jnp.where(explore, random_actions, jnp.argmax(q, axis=-1)) + self.action_start()}

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        out = {QF_PREDS: self._q(batch[Columns.OBS])}
        if self.config().double_q:
            out[QF_NEXT_PREDS] = self._q(batch[Columns.NEXT_OBS])
        return out

    def _compute_q_values(self, batch: dict) -> dict:
        return {QF_PREDS: self._q(batch[Columns.OBS])}

    def _forward_target(self, batch: dict) -> dict:
        """Q values of `batch["obs"]` under the (target) params it is applied with, as RLlib's
        `forward_target`; the learner passes the next observations in as `obs`."""
        return {QF_PREDS: self._q(batch[Columns.OBS])}
