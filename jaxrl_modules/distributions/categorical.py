"""Categorical (Discrete actions) and MultiCategorical (MultiDiscrete actions).

Both honour the space's `start`: samples and modes are `start + index`, and `logp` takes the
action as the space declares it (it subtracts `start`). `default_dist_cls(space)` binds `start`
through `get_partial_dist_cls`, so every user of the default distributions acts inside the space.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import distrax
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.distributions.base import Deterministic, RLlibDistributionMixin, check_dist_inputs, check_value


class Categorical(RLlibDistributionMixin, distrax.Categorical):
    """distrax.Categorical over the last axis of the logits, shifted by `start` (default 0);
    `required_input_dim` = n."""

    _accepted_kwargs = ("start",)

    def __init__(self, logits: Any = None, probs: Any = None, dtype: Any = int, start: int = 0):
        super().__init__(logits=logits, probs=probs, dtype=dtype)
        self._start = int(start)

    @property
    def start(self) -> int:
        return self._start

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "Categorical":
        kwargs = cls._bound(kwargs)
        inputs = check_dist_inputs(cls.__name__, inputs, what=" of logits, one per category")
        dist = cls(logits=inputs, start=kwargs.get("start", 0))
        dist._raw_logits = inputs  # argmax of raw logits lets XLA drop the unused log-softmax
        return dist

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        if not isinstance(space, gym.spaces.Discrete):
            raise TypeError(f"Categorical needs a Discrete action space; got {space}")
        return int(space.n)

    def _support(self) -> tuple:
        return (self.num_categories, self._start)

    def _describe(self) -> str:
        start = f", start {self._start}" if self._start else ""
        return f"{type(self).__name__} over {self.num_categories} categories{start}"

    def _sample_n(self, key: jax.Array, n: int) -> jax.Array:
        # NaN logits make distrax's inverse-CDF sampler return -1; clipping keeps every action
        # inside the space (the non-finite input itself is reported by the training loops).
        index = jnp.clip(super()._sample_n(key, n), 0, self.num_categories - 1)
        return index + self._start

    def log_prob(self, value: Any) -> jax.Array:
        value = check_value(type(self).__name__, value, self.batch_shape, (), integer=True)
        return super().log_prob(value - self._start)

    def prob(self, value: Any) -> jax.Array:
        value = check_value(type(self).__name__, value, self.batch_shape, (), integer=True)
        return super().prob(value - self._start)

    def kl_divergence(self, other: Any, **kwargs: Any) -> jax.Array:
        self._check_kl_partner(other, Categorical)
        return super().kl_divergence(other, **kwargs)

    def mode(self) -> jax.Array:
        return jnp.argmax(getattr(self, "_raw_logits", self.logits), axis=-1) + self._start

    def to_deterministic(self) -> Deterministic:
        return Deterministic(self.mode())


class MultiCategorical(RLlibDistributionMixin, distrax.Distribution):
    """Independent categoricals, one per MultiDiscrete component; samples are `[B, k]`,
    component i shifted by `start[i]` (MultiDiscrete's `start`, default zeros)."""

    _accepted_kwargs = ("input_lens", "start")

    def __init__(self, categoricals: Sequence[Categorical]):
        self._cats = tuple(categoricals)

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "MultiCategorical":
        kwargs = cls._bound(kwargs)
        input_lens = kwargs.get("input_lens")
        if input_lens is None:
            raise ValueError("MultiCategorical.from_logits needs input_lens (the space's nvec); "
                             "use default_dist_cls(space) or MultiCategorical.get_partial_dist_cls(input_lens=...)")
        input_lens = [int(n) for n in input_lens]
        start = kwargs.get("start")  # may be the space's numpy array: no truth test
        start = [0] * len(input_lens) if start is None else [int(s) for s in start]
        if len(start) != len(input_lens):
            raise ValueError(f"MultiCategorical: expected one start per component ({len(input_lens)}, "
                             f"input_lens={input_lens}); received start={start}")
        inputs = check_dist_inputs(cls.__name__, inputs, sum(input_lens), f" of logits (input_lens={input_lens})")
        splits = np.cumsum(input_lens)[:-1].tolist()
        return cls([Categorical(logits=x, start=s) for x, s in zip(jnp.split(inputs, splits, axis=-1), start)])

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        if isinstance(space, gym.spaces.MultiDiscrete):
            return int(np.sum(space.nvec))
        return int(sum(cls._partial_kwargs["input_lens"]))

    def _support(self) -> tuple:
        return tuple(c._support() for c in self._cats)

    def _describe(self) -> str:
        starts = [c.start for c in self._cats]
        start = f", start={starts}" if any(starts) else ""
        return f"{type(self).__name__} with input_lens={[c.num_categories for c in self._cats]}{start}"

    @property
    def event_shape(self) -> tuple:
        return (len(self._cats),)

    @property
    def batch_shape(self) -> tuple:
        return self._cats[0].batch_shape

    def _sample_n(self, key: jax.Array, n: int) -> jax.Array:
        keys = jax.random.split(key, len(self._cats))
        return jnp.stack([c._sample_n(k, n) for c, k in zip(self._cats, keys)], axis=-1)

    def log_prob(self, value: Any) -> jax.Array:
        value = check_value(type(self).__name__, value, self.batch_shape, self.event_shape, integer=True)
        return sum(c.log_prob(value[..., i]) for i, c in enumerate(self._cats))

    def entropy(self) -> jax.Array:
        return sum(c.entropy() for c in self._cats)

    def kl_divergence(self, other: Any, **kwargs: Any) -> jax.Array:
        self._check_kl_partner(other, MultiCategorical)
        return sum(a.kl_divergence(b) for a, b in zip(self._cats, other._cats))

    def mode(self) -> jax.Array:
        return jnp.stack([c.mode() for c in self._cats], axis=-1)

    def to_deterministic(self) -> Deterministic:
        return Deterministic(self.mode(), event_ndims=1)
