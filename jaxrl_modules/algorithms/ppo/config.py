"""PPOConfig: RLlib's PPO settings and defaults, plus `build_train_fn` for all-in-jit training."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxrl_modules import validation as v
from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig
from jaxrl_modules.rl_module_spec import RLModuleSpec

if TYPE_CHECKING:
    from jaxrl_modules.algorithms.train_fn import TrainFn


class PPOConfig(AlgorithmConfig):
    """RLlib's PPO defaults (lr 5e-5, lambda 1.0, clip 0.3, vf_clip 10, 30 epochs, minibatch
    128, train batch 4000, KL loss on with coeff 0.2 / target 0.01). As in RLlib, a dict
    (or no) model_config gives separate actor and critic encoders (vf_share_layers=False).

    `lr_schedule="linear"` anneals as PureJaxRL does: iteration i of `total_iterations` uses
    `lr * (1 - i / total_iterations)`, the last `lr / total_iterations`, held there after (never 0).
    It needs `total_iterations`: `build_train_fn(n)` and the command line's `--iterations` set it;
    `build()` without it is a ValueError."""

    model_config_auto_includes = {"vf_share_layers": False}

    def __init__(self) -> None:
        super().__init__()
        self.lr = 5e-5
        self.lambda_ = 1.0
        self.use_gae = True
        self.use_critic = True
        self.clip_param = 0.3
        self.vf_clip_param = 10.0
        self.vf_loss_coeff = 1.0
        self.entropy_coeff = 0.0
        self.use_kl_loss = True
        self.kl_coeff = 0.2
        self.kl_target = 0.01
        self.num_epochs = 30
        self.minibatch_size = 128
        self.shuffle_batch_per_epoch = True

    def _training_keys(self) -> list[str]:
        return super()._training_keys() + [
            "lambda_", "use_gae", "use_critic", "clip_param", "vf_clip_param", "vf_loss_coeff", "entropy_coeff",
            "use_kl_loss", "kl_coeff", "kl_target", "num_epochs", "minibatch_size", "shuffle_batch_per_epoch"]

    def settings_table(self) -> dict[str, v.Check]:
        always_true = v.one_of(True, expected="True (this PPO always uses GAE with a critic; False is not supported)")
        return {
            **super().settings_table(),
            "lr_schedule": v.optional(v.one_of("linear")),
            "lambda_": v.unit_interval,
            "use_gae": always_true,
            "use_critic": always_true,
            "clip_param": v.positive_float,
            "vf_clip_param": v.positive_float,
            "vf_loss_coeff": v.nonnegative_float,
            "entropy_coeff": v.nonnegative_float,
            "use_kl_loss": v.boolean(),
            "kl_coeff": v.nonnegative_float,
            "kl_target": v.positive_float,
            "num_epochs": v.positive_int,
            "minibatch_size": v.positive_int,
            "shuffle_batch_per_epoch": v.boolean(),
        }

    def _validate_together(self) -> None:
        super()._validate_together()
        self._check_minibatch_size()

    def get_algorithm_class(self) -> type:
        from jaxrl_modules.algorithms.ppo.ppo import PPO

        return PPO

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from jaxrl_modules.algorithms.ppo.module import DefaultPPORLModule

        return RLModuleSpec(module_class=DefaultPPORLModule)

    def get_default_learner_class(self) -> type:
        from jaxrl_modules.algorithms.ppo.learner import PPOLearner

        return PPOLearner

    def num_minibatches(self, size: int | None = None) -> int:
        """Minibatches per epoch of a global batch of `size` rows (default: the global train batch): a
        minibatch is `minibatch_size` rows per learner."""
        size = size or self.total_batch_size()
        return max(1, size // min(self.minibatch_size * self.learner_count(), size))

    def build_train_fn(self, num_iterations: int) -> TrainFn:
        """A pure `train(rng) -> (params, metrics)` over a gymnax env ("gymnax:<id>"),
        `num_iterations` PPO iterations in one `lax.scan`: jit it, vmap it over seeds. Builds from a
        copy of this config (`total_iterations` defaults to `num_iterations` there); this one is unchanged."""
        from jaxrl_modules.algorithms.ppo.jax_train import make_train_fn

        v.positive_int("num_iterations", num_iterations)
        config = self.copy()
        if config.total_iterations is None:
            config.total_iterations = int(num_iterations)
        config.validate()
        return make_train_fn(config, num_iterations)
