"""PPO fully inside `jax.jit` over gymnax envs (PureJaxRL style): the generic `JitLoop` (rollout scan,
then `PPOLearner.learn`: GAE and the minibatch update scan) with PPO's learner."""

from __future__ import annotations

from typing import Any

from jaxrl_modules.algorithms.jit_loop import JitLoop, TrainState
from jaxrl_modules.algorithms.train_fn import TrainFn

__all__ = ["JaxPPO", "TrainState", "make_train_fn"]


class JaxPPO(JitLoop):
    """The pieces of all-in-jit PPO for one config (a `JitLoop` with the config's PPO learner)."""

    def __init__(self, config: Any):
        """`config` is a validated PPOConfig."""
        from jaxrl_modules.algorithms.ppo.stacked_learner import make_ppo_learner

        super().__init__(config, make_ppo_learner)


def make_train_fn(config: Any, num_iterations: int) -> TrainFn:
    """The pure `train(rng) -> (params, metrics)` of `num_iterations` iterations (a `TrainFn`), metrics
    with a leading iteration axis, incl. the non-finite keys of `scan_with_first_nonfinite`. `config`
    (validated, `total_iterations` set where a schedule needs it) is read, never changed."""
    return JaxPPO(config).train_fn(num_iterations)
