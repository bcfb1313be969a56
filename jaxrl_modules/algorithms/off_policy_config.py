"""The config base of the off-policy algorithms (DQN, SAC)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig
from jaxrl_modules.model_config import DefaultModelConfig


class OffPolicyConfig(AlgorithmConfig):
    """Adds the algorithm's model-config auto-includes (e.g. DQN's dueling and epsilon) even to a
    `DefaultModelConfig` object, as RLlib does, and `build_train_fn` for gymnax envs."""

    def merged_model_config(self, spec_config: Any = None) -> Any:
        base = spec_config if spec_config is not None else self.model_config
        if isinstance(base, DefaultModelConfig):
            return {**dataclasses.asdict(base), **self.model_config_auto_includes}
        return super().merged_model_config(spec_config)

    def build_train_fn(self, num_iterations: int) -> Callable:
        """A pure `train(rng) -> (params, metrics)` over a gymnax env ("gymnax:<id>"): each iteration
        samples `rollout_fragment_length` steps from every env, stores them, takes one gradient step."""
        from jaxrl_modules.algorithms.off_policy_jax import make_train_fn

        return make_train_fn(self.copy(), num_iterations)
