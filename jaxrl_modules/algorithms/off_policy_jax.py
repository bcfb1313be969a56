"""Off-policy training (DQN, SAC) fully inside `jax.jit` over gymnax envs: the generic `JitLoop` with
the algorithm's learner wrapped in a `ReplayLearner` (sample, store in the replay buffer, learn)."""

from __future__ import annotations

from typing import Any

from jaxrl_modules.algorithms.jit_loop import JitLoop
from jaxrl_modules.algorithms.replay_learner import ReplayLearner
from jaxrl_modules.algorithms.train_fn import TrainFn


def replay_learner(module: Any, config: Any, num_envs: int) -> ReplayLearner:
    """The config's DQN/SAC learner for `module`, learning from rollouts through the replay buffer."""
    return ReplayLearner(config.get_default_learner_class()(module, config), config, num_envs)


def rollout_steps(config: Any) -> int:
    """Env steps per env per iteration: `rollout_fragment_length`, or 1 ("auto": one gradient step per
    sampling step, RLlib's default training intensity)."""
    return int(config.rollout_length() if config.rollout_fragment_length != "auto" else 1)


def algorithm_name(config: Any) -> str:
    return type(config).__name__.removesuffix("Config")


class JaxOffPolicy(JitLoop):
    """The pieces of all-in-jit DQN/SAC for one config (a `JitLoop` over a `ReplayLearner`)."""

    def __init__(self, config: Any):
        super().__init__(config, replay_learner, steps=rollout_steps(config), stateless_only=algorithm_name(config))


def make_train_fn(config: Any, num_iterations: int) -> TrainFn:
    """The pure `train(rng) -> (params, metrics)` of `num_iterations` iterations (a `TrainFn`), metrics
    with a leading iteration axis, incl. the non-finite keys of `scan_with_first_nonfinite`. `config`
    (validated) is read, never changed."""
    return JaxOffPolicy(config).train_fn(num_iterations)
