"""The config base of the off-policy algorithms (DQN, SAC)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from jaxrl_modules import validation as v
from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig
from jaxrl_modules.algorithms.replay_buffer import parse_replay_buffer_config
from jaxrl_modules.model_config import DefaultModelConfig

if TYPE_CHECKING:
    from jaxrl_modules.algorithms.train_fn import TrainFn


class OffPolicyConfig(AlgorithmConfig):
    """Adds the algorithm's model-config auto-includes (e.g. DQN's dueling and epsilon) even to a
    `DefaultModelConfig` object, as RLlib does, and `build_train_fn` for gymnax envs."""

    def settings_table(self) -> dict[str, v.Check]:
        return {
            **super().settings_table(),
            "replay_buffer_config": _replay_buffer_check(self),
            "num_steps_sampled_before_learning_starts": v.nonnegative_int,
            "tau": v.real(0, 1, low_open=True),
        }

    def _validate_together(self) -> None:
        super()._validate_together()
        parse_replay_buffer_config(self.replay_buffer_config, self.total_batch_size())

    def merged_model_config(self, spec_config: Any = None) -> Any:
        base = spec_config if spec_config is not None else self.model_config
        if isinstance(base, DefaultModelConfig):
            return {**dataclasses.asdict(base), **self._auto_includes_for(base)}
        return super().merged_model_config(spec_config)

    def _auto_includes_for(self, base: DefaultModelConfig) -> dict:
        """The auto-includes added to a config object. A plain DefaultModelConfig gets them all (RLlib
        adds them even then); a typed one (DQNModelConfig, SACModelConfig) carries these settings
        itself, and an object field left at its default cannot be told from one never set, so each
        setting comes from the side that changed it from its default: set differently on both
        sides is a ValueError naming the setting and both values."""
        fields = {f.name for f in dataclasses.fields(base)}
        out = {}
        for key, value in self.model_config_auto_includes.items():
            if key not in fields:
                out[key] = value
                continue
            mine, default = _plain(getattr(base, key)), _plain(type(base).field_default(key))
            if mine == default:
                out[key] = value
            elif _plain(value) not in (default, mine):
                raise ValueError(
                    f"{key} is set twice, differently: training({key}={getattr(self, key, value)!r}) and the model config's "
                    f"{type(base).__name__}({key}={getattr(base, key)!r}); expected it set in one place (or the same "
                    "value in both)")
        return out

    def build_train_fn(self, num_iterations: int) -> TrainFn:
        """A pure `train(rng) -> (params, metrics)` over a gymnax env ("gymnax:<id>"): each iteration
        samples `rollout_fragment_length` steps from every env, stores them, takes one gradient step.
        Validates and builds from a copy of this config; this one is unchanged."""
        from jaxrl_modules.algorithms.off_policy_jax import make_train_fn

        v.positive_int("num_iterations", num_iterations)
        config = self.copy()
        config.validate()
        return make_train_fn(config, num_iterations)


def _replay_buffer_check(config: OffPolicyConfig) -> v.Check:
    """Merges the given keys into the config's current replay_buffer_config (as RLlib's
    `training(replay_buffer_config=...)` does), then checks keys, type and capacity."""

    def check(name: str, value: Any) -> Any:
        if not isinstance(value, dict):
            v.fail(name, "a dict such as {'type': 'ReplayBuffer', 'capacity': 50000}", value, TypeError)
        current = getattr(config, "replay_buffer_config", None) or {}
        merged = {**current, **value}
        return parse_replay_buffer_config(merged, None)

    return v.validator("a dict such as {'type': 'ReplayBuffer', 'capacity': 50000}", check)


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively, to compare settings given either way (epsilon schedules)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value
