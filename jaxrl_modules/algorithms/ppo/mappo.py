"""MAPPO's centralised critic as a custom PPO module: the actor reads only the agent's own observation,
the critic the env's global state (RLlib's custom-RLModule pattern: override `setup` and the encoders).

Use it as the module class of a JaxMARL run, shared by every agent (no `multi_agent()`: MAPPO with
parameter sharing) or one per policy (`multi_agent(...)`: identical MAPPO policies still train stacked):

    PPOConfig().environment("jaxmarl:MPE_simple_spread_v3").rl_module(rl_module_spec=RLModuleSpec(module_class=MAPPOModule))

`reads_global_state = True` asks the JaxMARL runner for Dict observations `{"obs": own, "global_state":
env's}` (the env's `world_state` where it has one, as SMAX does, else all agents' observations
concatenated); the same PPO learner trains it in the same `build_train_fn`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Optional

import gymnasium as gym
import jax

from jaxrl_modules.algorithms.jaxmarl_runner import GLOBAL_STATE, OWN_OBS
from jaxrl_modules.algorithms.ppo.module import DefaultPPORLModule
from jaxrl_modules.columns import Columns
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.models import Encoder, check_observation_space, make_head
from jaxrl_modules.validation import fail


@dataclasses.dataclass(frozen=True)
class MAPPOModelConfig(DefaultModelConfig):
    """DefaultModelConfig with separate actor and critic encoders (they read different inputs) and no LSTM."""

    vf_share_layers: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vf_share_layers:
            fail("vf_share_layers", "False for MAPPOModule: its actor reads the agent's own observation and its critic "
                 "the global state, so they cannot share an encoder", self.vf_share_layers)
        if self.use_lstm:
            fail("use_lstm", "False for MAPPOModule (JaxMARL envs train stateless modules so far)", self.use_lstm)


class MAPPOModule(DefaultPPORLModule):
    """PPO actor on `obs["obs"]`, critic on `obs["global_state"]`; params `actor_encoder`, `critic_encoder`,
    `pi`, `vf` as the default module's with vf_share_layers=False (inference_only drops the critic)."""

    model_config_class: ClassVar[type] = MAPPOModelConfig
    reads_global_state: ClassVar[bool] = True  # the JaxMARL runner gives it Dict {"obs", "global_state"} observations

    def setup(self) -> None:
        super(DefaultPPORLModule, self).setup()
        cfg, space = self.config(), self.observation_space
        if not (isinstance(space, gym.spaces.Dict) and set(space.spaces) == {OWN_OBS, GLOBAL_STATE}):
            raise ValueError(f"MAPPOModule needs a Dict observation space with keys {[OWN_OBS, GLOBAL_STATE]} (a JaxMARL "
                             f"env gives it one); got {space}")
        for key in (OWN_OBS, GLOBAL_STATE):
            check_observation_space(space[key])
        self.actor_encoder = Encoder(tuple(space[OWN_OBS].shape), cfg)
        if not self._drops_critic():
            self.critic_encoder = Encoder(tuple(space[GLOBAL_STATE].shape), cfg)
        dist_cls = self.get_train_action_dist_cls()
        self.pi = make_head(cfg, dist_cls.required_input_dim(self.action_space, cfg), dist_cls)
        if not self._drops_critic():
            self.vf = make_head(cfg, 1)

    def _encode(self, batch: dict, which: str) -> tuple[jax.Array, Optional[Any]]:
        obs = batch[Columns.OBS]
        if which == "actor":
            return self.actor_encoder(obs[OWN_OBS], None, None)
        return self.critic_encoder(obs[GLOBAL_STATE], None, None)
