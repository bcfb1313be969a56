"""DefaultSACRLModule: squashed-Gaussian policy and twin Q networks over concat(obs, action)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.spaces.utils import flatdim

from jaxrl_modules.apis import InferenceOnlyAPI, QNetAPI, TargetNetworkAPI
from jaxrl_modules.columns import Columns
from jaxrl_modules.distributions import SquashedGaussian
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.models import Encoder, check_observation_space, make_head, refuse_unused_model_fields
from jaxrl_modules.rl_module import RLModule
from jaxrl_modules.validation import boolean

QF_PREDS = "qf_preds"
QF_TWIN_PREDS = "qf_twin_preds"
QF_TARGET_NEXT = "q_target_next"
NEXT_ACTIONS = "next_actions"


@dataclasses.dataclass(frozen=True)
class SACModelConfig(DefaultModelConfig):
    """DefaultModelConfig plus the SAC setting RLlib auto-includes into the model config, with
    RLlib's default, declared here only (SACConfig reads its default from this field): `twin_q`
    (True: a second Q network, and min(Q1, Q2) for targets and the actor)."""

    twin_q: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "twin_q", boolean()("twin_q", self.twin_q))


def check_sac_action_space(space: Any) -> None:
    """SAC's squashed Gaussian needs a 1-D float Box with finite bounds (it acts in [-1, 1],
    which the env runners map to [low, high])."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1 or not np.issubdtype(space.dtype, np.floating):
        raise ValueError(f"DefaultSACRLModule needs a 1-D float Box action space; got {space}")
    bounded = np.isfinite(space.low) & np.isfinite(space.high)
    if not bounded.all():
        dims = np.flatnonzero(~bounded).tolist()
        raise ValueError(f"DefaultSACRLModule needs a bounded Box action space (finite low and high, which its "
                         f"[-1, 1] actions are unsquashed to); got {space} with infinite bounds in dimension(s) {dims}")


class DefaultSACRLModule(RLModule, QNetAPI, TargetNetworkAPI, InferenceOnlyAPI):
    """`pi_encoder` + `pi` (2·act_dim outputs for SquashedGaussian), `qf_encoder` + `qf` and,
    with `twin_q` (default True), `qf_twin_encoder` + `qf_twin`. The Q encoders are MLPs over
    concat(obs, action) (RLlib 2.40's layout). Bounded 1-D Box actions only: as RLlib's, the
    policy acts in [-1, 1] and the env runners unsquash to [low, high]
    (`environment(normalize_actions=True)`, the default); Q takes the module's [-1, 1] actions."""

    model_config_class: ClassVar[type] = SACModelConfig  # a subclass may extend it with its own settings
    # DefaultModelConfig fields this module does not read, as RLlib's SAC: refused unless at their defaults
    # (a subclass that reads one drops it from this dict).
    unused_model_fields: ClassVar[dict] = {
        "free_log_std": "SAC's policy head outputs the squashed Gaussian's mean and log-std (RLlib's SAC asserts "
                        "free_log_std=False)",
        "log_std_clip_param": "SAC's squashed Gaussian clamps the log-std to [-5, 2] (RLlib's MIN/MAX_LOG_NN_OUTPUT); "
                              "as in RLlib's SAC, its policy head applies no +-log_std_clip_param clip",
        "vf_share_layers": "SAC has no value function: its policy and Q networks always have separate encoders",
    }

    def __post_init__(self) -> None:
        # RLModule's parses model_config into a model_config_class once, at construction (clones carry it).
        super().__post_init__()
        refuse_unused_model_fields(self.model_config, type(self))
        if self.action_space is not None:
            check_sac_action_space(self.action_space)

    @nn.nowrap
    def config(self) -> SACModelConfig:
        return self.model_config

    @nn.nowrap
    def twin_q(self) -> bool:
        return self.model_config.twin_q

    @nn.nowrap
    def q_param_keys(self) -> tuple[str, ...]:
        """The top-level params keys of the Q networks (the critic: `qf_encoder`, `qf` and, with
        twin_q, `qf_twin_encoder`, `qf_twin`); every other key is the policy's. The learner gives
        these the critic optimizer and freezes them in the actor loss."""
        return tuple(name.split(".")[0] for name in self.get_non_inference_attributes())

    @nn.nowrap
    def action_dist_inputs_fn(self) -> Callable[[Any, dict], dict]:
        """The pure, un-jitted `(params, batch) -> {ACTION_DIST_INPUTS: [B, 2 * act_dim]}`: the
        policy alone on `batch["obs"]` (no Q networks), for the learner's next-state actions."""
        def fn(params: Any, batch: dict) -> dict:
            self._validate_batch(batch)
            self._check_params(params, "inference", where=f"{type(self).__name__}.action_dist_inputs_fn")
            return self.apply({"params": params}, batch, method="_forward")

        return fn

    @nn.nowrap
    def get_inference_action_dist_cls(self) -> type:
        check_sac_action_space(self._require_action_space())
        return SquashedGaussian  # [-1, 1], as RLlib's SAC

    @nn.nowrap
    def get_non_inference_attributes(self) -> list[str]:
        return ["qf_encoder", "qf"] + (["qf_twin_encoder", "qf_twin"] if self.twin_q() else [])

    def setup(self) -> None:
        super().setup()
        check_observation_space(self.observation_space)
        cfg = self.config()
        dist_cls = self.get_train_action_dist_cls()
        self.pi_encoder = Encoder(tuple(self.observation_space.shape), cfg)
        self.pi = make_head(cfg, dist_cls.required_input_dim(self.action_space))
        if self.inference_only:
            return
        qshape = (flatdim(self.observation_space) + flatdim(self.action_space),)  # concat(obs, action), both Box
        self.qf_encoder = Encoder(qshape, cfg)
        self.qf = make_head(cfg, 1)
        if self.twin_q():
            self.qf_twin_encoder = Encoder(qshape, cfg)
            self.qf_twin = make_head(cfg, 1)

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        emb, _ = self.pi_encoder(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: self.pi(emb)}

    def q_values(self, obs: jax.Array, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(Q1, Q2) of `[B]` each (Q2 = Q1 without twin_q)."""
        x = jnp.concatenate([obs.reshape(obs.shape[0], -1), actions.reshape(actions.shape[0], -1)], axis=-1)
        q1 = self.qf(self.qf_encoder(x)[0])[..., 0]
        q2 = self.qf_twin(self.qf_twin_encoder(x)[0])[..., 0] if self.twin_q() else q1
        return q1, q2

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        out = self._forward(batch)
        out[QF_PREDS], out[QF_TWIN_PREDS] = self.q_values(batch[Columns.OBS], batch[Columns.ACTIONS])
        return out

    def _compute_q_values(self, batch: dict) -> dict:
        q1, q2 = self.q_values(batch[Columns.OBS], batch[Columns.ACTIONS])
        return {QF_PREDS: jnp.minimum(q1, q2)}

    def _forward_target(self, batch: dict) -> dict:
        """min(Q1, Q2) at (batch["obs"], batch["actions"]) under the target params, as RLlib's
        `forward_target`; the learner passes the next observations and next actions in."""
        q1, q2 = self.q_values(batch[Columns.OBS], batch[Columns.ACTIONS])
        return {QF_TARGET_NEXT: jnp.minimum(q1, q2)}
