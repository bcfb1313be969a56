"""RLlib-style helpers shared by every action distribution, and `Deterministic`.

Each distribution is a distrax distribution with RLlib's aliases added: `from_logits`,
`logp`, `kl`, `to_deterministic` and `required_input_dim`. Partial classes (RLlib's
`get_partial_dist_cls`) bind constructor arguments such as MultiDiscrete input lengths.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import distrax
import gymnasium as gym
import jax
import jax.numpy as jnp


class RLlibDistributionMixin:
    """RLlib names on top of a distrax distribution. Log-probs are always `[B]`."""

    _partial_kwargs: ClassVar[dict] = {}

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "RLlibDistributionMixin":
        raise NotImplementedError

    @classmethod
    def get_partial_dist_cls(cls, **partial_kwargs: Any) -> type:
        """A subclass whose `from_logits` and `required_input_dim` get `partial_kwargs`."""
        clash = set(partial_kwargs) & set(cls._partial_kwargs)
        if clash:
            raise ValueError(f"{cls.__name__} already binds {sorted(clash)}; cannot bind them again.")
        bound = {**cls._partial_kwargs, **partial_kwargs}
        return type(cls.__name__, (cls,), {"_partial_kwargs": bound, "__module__": cls.__module__})

    @classmethod
    def _bound(cls, kwargs: dict) -> dict:
        clash = set(kwargs) & set(cls._partial_kwargs)
        if clash:
            raise ValueError(f"{cls.__name__} already binds {sorted(clash)}; do not pass them again.")
        return {**cls._partial_kwargs, **kwargs}

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        raise NotImplementedError

    def logp(self, value: Any) -> jax.Array:
        return self.log_prob(value)

    def kl(self, other: Any) -> jax.Array:
        return self.kl_divergence(other)

    def to_deterministic(self) -> "Deterministic":
        raise NotImplementedError


class Deterministic(RLlibDistributionMixin, distrax.Deterministic):
    """A point mass whose log-prob and entropy sum over `event_ndims` trailing axes.

    distrax's Deterministic is elementwise; RLlib's gives `[B, d]` log-probs. Ours gives
    `[B]`, so the log-probs of all distributions add up (as the autoregressive example needs).
    """

    def __init__(self, loc: jax.Array, event_ndims: int = 0):
        super().__init__(loc=loc)
        self._event_ndims = event_ndims

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "Deterministic":
        kwargs = cls._bound(kwargs)
        return cls(inputs, event_ndims=kwargs.get("event_ndims", 1))

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        return int(jnp.prod(jnp.array(space.shape))) if space.shape else 1

    def _reduce(self, x: jax.Array) -> jax.Array:
        return x.sum(axis=tuple(range(-self._event_ndims, 0))) if self._event_ndims else x

    def log_prob(self, value: jax.Array) -> jax.Array:
        return self._reduce(super().log_prob(value))

    def entropy(self) -> jax.Array:
        return self._reduce(super().entropy())

    def mode(self) -> jax.Array:
        return self.loc

    def to_deterministic(self) -> "Deterministic":
        return self
