"""DQNConfig: RLlib's DQN setting names and defaults."""

from __future__ import annotations


from jaxrl_modules import validation as v
from jaxrl_modules.algorithms.dqn.module import DQNModelConfig
from jaxrl_modules.algorithms.off_policy_config import OffPolicyConfig
from jaxrl_modules.rl_module_spec import RLModuleSpec


class DQNConfig(OffPolicyConfig):
    """RLlib's DQN defaults: double_q, dueling and epsilon as DQNModelConfig declares them, n_step 1,
    lr 5e-4, grad_clip 40, train_batch_size 32, target_network_update_freq 500, tau 1.0,
    Huber loss, replay capacity 50000, learning starts after 1000 env steps."""

    def __init__(self) -> None:
        super().__init__()
        self.lr = 5e-4
        self.grad_clip = 40.0
        self.train_batch_size = 32
        # The module settings RLlib auto-includes into the model config: defaults declared once, in DQNModelConfig.
        self.double_q = DQNModelConfig.field_default("double_q")
        self.dueling = DQNModelConfig.field_default("dueling")
        self.epsilon = list(DQNModelConfig.field_default("epsilon"))
        self.n_step = 1
        self.target_network_update_freq = 500
        self.tau = 1.0
        self.td_error_loss_fn = "huber"
        self.replay_buffer_config = {"type": "ReplayBuffer", "capacity": 50000}
        self.num_steps_sampled_before_learning_starts = 1000
        self.training_intensity = None
        self.rollout_fragment_length = 1

    def _training_keys(self) -> list[str]:
        return super()._training_keys() + [
            "double_q", "dueling", "n_step", "epsilon", "target_network_update_freq", "tau", "td_error_loss_fn",
            "replay_buffer_config", "num_steps_sampled_before_learning_starts", "training_intensity"]

    def settings_table(self) -> dict[str, v.Check]:
        return {
            **super().settings_table(),
            "double_q": v.boolean(),
            "dueling": v.boolean(),
            "n_step": v.positive_int,
            "epsilon": v.schedule(0, 1),
            "target_network_update_freq": v.positive_int,
            "td_error_loss_fn": v.one_of("huber", "mse"),
            # Accepted by name for RLlib configs, but not implemented: refused rather than ignored.
            "training_intensity": v.none_only("None: training_intensity is not implemented (one gradient step per "
                                              "sampling step after num_steps_sampled_before_learning_starts)"),
        }

    def settings_without_effect(self) -> dict:
        """Beside the base's: `normalize_actions` and `clip_actions` map Box actions to the env, and DQN acts in
        Discrete action spaces only, so they must keep their defaults (True, False)."""
        out = super().settings_without_effect()
        why = "DQN acts in Discrete action spaces only, and {} applies to Box actions"
        out["normalize_actions"] = ((True,), why.format("normalize_actions (mapping [-1, 1] to [low, high])"))
        out["clip_actions"] = ((False,), why.format("clip_actions (clipping to [low, high])"))
        return out

    @property
    def model_config_auto_includes(self) -> dict:  # type: ignore[override]
        """RLlib's auto-includes, the DQNModelConfig fields that DQNConfig sets (`training(double_q=...,
        dueling=..., epsilon=...)`); the default module parses them into its DQNModelConfig."""
        epsilon = v.schedule(0, 1)("epsilon", self.epsilon)
        return {"double_q": self.double_q, "dueling": self.dueling, "epsilon": [list(p) for p in epsilon]}

    def get_algorithm_class(self) -> type:
        from jaxrl_modules.algorithms.dqn.dqn import DQN

        return DQN

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from jaxrl_modules.algorithms.dqn.module import DefaultDQNRLModule

        return RLModuleSpec(module_class=DefaultDQNRLModule)

    def get_default_learner_class(self) -> type:
        from jaxrl_modules.algorithms.dqn.learner import DQNLearner

        return DQNLearner
