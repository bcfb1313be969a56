"""SACConfig: RLlib's SAC setting names and defaults."""

from __future__ import annotations

from typing import Any

from jaxrl_modules import validation as v
from jaxrl_modules.algorithms.off_policy_config import OffPolicyConfig
from jaxrl_modules.algorithms.sac.module import SACModelConfig
from jaxrl_modules.rl_module_spec import RLModuleSpec


class SACConfig(OffPolicyConfig):
    """RLlib's SAC defaults: twin_q, tau 5e-3, initial_alpha 1.0, target_entropy "auto"
    (-|A|), actor_lr 3e-5, critic_lr 3e-4, alpha_lr 3e-4, target_network_update_freq 0 (every
    update), train_batch_size_per_learner 256, learning starts after 1500 steps, replay 1e6."""

    def __init__(self) -> None:
        super().__init__()
        self.twin_q = SACModelConfig.field_default("twin_q")  # declared once, in SACModelConfig
        self.tau = 5e-3
        self.initial_alpha = 1.0
        self.target_entropy: Any = "auto"
        self.actor_lr = 3e-5
        self.critic_lr = 3e-4
        self.alpha_lr = 3e-4
        self.lr = None
        self.target_network_update_freq = 0
        self.train_batch_size_per_learner = 256
        self.n_step = 1
        self.num_steps_sampled_before_learning_starts = 1500
        self.replay_buffer_config = {"type": "ReplayBuffer", "capacity": int(1e6)}
        self.rollout_fragment_length = 1

    def _training_keys(self) -> list[str]:
        return super()._training_keys() + [
            "twin_q", "tau", "initial_alpha", "target_entropy", "actor_lr", "critic_lr", "alpha_lr",
            "target_network_update_freq", "n_step", "num_steps_sampled_before_learning_starts", "replay_buffer_config"]

    def settings_table(self) -> dict[str, v.Check]:
        return {
            **super().settings_table(),
            "lr": v.none_only("None: SAC's learning rates are actor_lr, critic_lr and alpha_lr"),
            "twin_q": v.boolean(),
            "initial_alpha": v.positive_float,
            "target_entropy": v.optional(v.literal_or("auto", v.real())),
            "actor_lr": v.positive_float,
            "critic_lr": v.positive_float,
            "alpha_lr": v.positive_float,
            "target_network_update_freq": v.nonnegative_int,  # 0: every update, as RLlib's SAC
            "n_step": v.one_of(1, expected="1 (n_step > 1 is not supported by SAC yet)"),
        }

    @property
    def model_config_auto_includes(self) -> dict:  # type: ignore[override]
        """RLlib's auto-include, the SACModelConfig field SACConfig sets (`training(twin_q=...)`)."""
        return {"twin_q": self.twin_q}

    def get_algorithm_class(self) -> type:
        from jaxrl_modules.algorithms.sac.sac import SAC

        return SAC

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from jaxrl_modules.algorithms.sac.module import DefaultSACRLModule

        return RLModuleSpec(module_class=DefaultSACRLModule)

    def get_default_learner_class(self) -> type:
        from jaxrl_modules.algorithms.sac.learner import SACLearner

        return SACLearner
