"""Categorical (Discrete actions) and MultiCategorical (MultiDiscrete actions)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import distrax
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.distributions.base import Deterministic, RLlibDistributionMixin


class Categorical(RLlibDistributionMixin, distrax.Categorical):
    """distrax.Categorical over the last axis of the logits; `required_input_dim` = n."""

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "Categorical":
        dist = cls(logits=inputs, **cls._bound(kwargs))
        dist._raw_logits = inputs  # argmax of raw logits lets XLA drop the unused log-softmax
        return dist

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        if not isinstance(space, gym.spaces.Discrete):
            raise TypeError(f"Categorical needs a Discrete action space; got {space}")
        return int(space.n)

    def mode(self) -> jax.Array:
        return jnp.argmax(getattr(self, "_raw_logits", self.logits), axis=-1)

    def to_deterministic(self) -> Deterministic:
        return Deterministic(self.mode())


class MultiCategorical(RLlibDistributionMixin, distrax.Distribution):
    """Independent categoricals, one per MultiDiscrete component; samples are `[B, k]`."""

    def __init__(self, categoricals: Sequence[Categorical]):
        self._cats = tuple(categoricals)

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "MultiCategorical":
        kwargs = cls._bound(kwargs)
        input_lens = kwargs.get("input_lens")
        if input_lens is None:
            raise ValueError("MultiCategorical.from_logits needs input_lens (the space's nvec).")
        if inputs.shape[-1] != sum(input_lens):
            raise ValueError(
                f"MultiCategorical expects {sum(input_lens)} logits (input_lens={list(input_lens)}); "
                f"got last dim {inputs.shape[-1]}"
            )
        splits = np.cumsum(input_lens)[:-1].tolist()
        return cls([Categorical(logits=x) for x in jnp.split(inputs, splits, axis=-1)])

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        if isinstance(space, gym.spaces.MultiDiscrete):
            return int(np.sum(space.nvec))
        return int(sum(cls._partial_kwargs["input_lens"]))

    @property
    def event_shape(self) -> tuple:
        return (len(self._cats),)

    @property
    def batch_shape(self) -> tuple:
        return self._cats[0].batch_shape

    def _sample_n(self, key: jax.Array, n: int) -> jax.Array:
        keys = jax.random.split(key, len(self._cats))
        return jnp.stack([c._sample_n(k, n) for c, k in zip(self._cats, keys)], axis=-1)

    def log_prob(self, value: jax.Array) -> jax.Array:
        return sum(c.log_prob(value[..., i]) for i, c in enumerate(self._cats))

    def entropy(self) -> jax.Array:
        return sum(c.entropy() for c in self._cats)

    def kl_divergence(self, other: "MultiCategorical", **kwargs: Any) -> jax.Array:
        return sum(a.kl_divergence(b) for a, b in zip(self._cats, other._cats))

    def mode(self) -> jax.Array:
        return jnp.stack([c.mode() for c in self._cats], axis=-1)

    def to_deterministic(self) -> Deterministic:
        return Deterministic(self.mode(), event_ndims=1)
