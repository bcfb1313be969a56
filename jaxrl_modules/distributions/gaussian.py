"""DiagGaussian (Box actions) and SquashedGaussian (bounded Box actions, SAC).

Both act in the module's action units; with `environment(normalize_actions=True)` (the
default) the env runners map [-1, 1] to the Box bounds (`algorithms/action_transform.py`).
"""

from __future__ import annotations

from typing import Any, Optional

import distrax
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.spaces.utils import flatdim

from jaxrl_modules.distributions.base import Deterministic, RLlibDistributionMixin, check_dist_inputs, check_value

# RLlib's MIN_LOG_NN_OUTPUT / MAX_LOG_NN_OUTPUT for the squashed Gaussian's log-std.
MIN_LOG_STD, MAX_LOG_STD = -5.0, 2.0


def _check_mean_log_std(name: str, inputs: Any) -> Any:
    inputs = check_dist_inputs(name, inputs, what=" (mean and log-std halves)")
    if inputs.shape[-1] % 2:
        raise ValueError(f"{name}.from_logits: expected a float array [B, 2d] (mean and log-std halves, an even "
                         f"last dim); received {inputs.dtype}{list(inputs.shape)}")
    return inputs


def _box_dim(space: gym.Space, name: str) -> int:
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"{name} needs a Box action space; got {space}")
    return flatdim(space)


class DiagGaussian(RLlibDistributionMixin, distrax.MultivariateNormalDiag):
    """Diagonal Gaussian; inputs are `[..., 2d]`: first half mean, second half log-std."""

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "DiagGaussian":
        cls._bound(kwargs)
        mean, log_std = jnp.split(_check_mean_log_std(cls.__name__, inputs), 2, axis=-1)
        return cls(loc=mean, scale_diag=jnp.exp(log_std))

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        return 2 * _box_dim(space, cls.__name__)

    def _support(self) -> tuple:
        return tuple(self.event_shape)

    def _describe(self) -> str:
        return f"{type(self).__name__} of dimension {self.event_shape[-1]}"

    def log_prob(self, value: Any) -> jax.Array:
        return super().log_prob(check_value(type(self).__name__, value, self.batch_shape, self.event_shape, integer=False))

    def kl_divergence(self, other: Any, **kwargs: Any) -> jax.Array:
        self._check_kl_partner(other, DiagGaussian)
        return super().kl_divergence(other, **kwargs)

    def to_deterministic(self) -> Deterministic:
        return Deterministic(self.loc, event_ndims=1)


class SquashedGaussian(RLlibDistributionMixin, distrax.Transformed):
    """tanh-squashed diagonal Gaussian rescaled to `[low, high]` (default [-1, 1], as RLlib's
    SAC uses it: the env runners then unsquash to the Box bounds).

    `from_logits` clamps the log-std to [-5, 2] as RLlib does. Unlike RLlib, the log-prob
    includes the Jacobian of the rescaling, and `to_deterministic` returns the squashed
    mean (an action inside the bounds), not the raw Gaussian mean.
    """

    _accepted_kwargs = ("low", "high")

    def __init__(self, loc: jax.Array, scale: jax.Array, low: float = -1.0, high: float = 1.0):
        self.low, self.high = low, high
        base = distrax.MultivariateNormalDiag(loc=loc, scale_diag=scale)
        affine = distrax.ScalarAffine(shift=(high + low) / 2.0, scale=(high - low) / 2.0)
        super().__init__(base, distrax.Block(distrax.Chain([affine, distrax.Tanh()]), 1))

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "SquashedGaussian":
        kwargs = cls._bound(kwargs)
        mean, log_std = jnp.split(_check_mean_log_std(cls.__name__, inputs), 2, axis=-1)
        log_std = jnp.clip(log_std, MIN_LOG_STD, MAX_LOG_STD)
        low, high = kwargs.get("low", -1.0), kwargs.get("high", 1.0)
        if not any(isinstance(x, jax.core.Tracer) for x in (low, high)):  # concrete bounds: checked, free under jit
            lo, hi = np.asarray(low), np.asarray(high)
            if lo.dtype.kind not in "fiu" or hi.dtype.kind not in "fiu":
                raise TypeError(f"{cls.__name__}.from_logits: expected numbers or float arrays for low and high; got "
                                f"low={low!r}, high={high!r}")
            if not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)) or not np.all(lo < hi):
                raise ValueError(f"{cls.__name__}.from_logits: expected finite bounds with low < high; got low={low!r}, "
                                 f"high={high!r}")
        return cls(mean, jnp.exp(log_std), low, high)

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        return 2 * _box_dim(space, cls.__name__)

    def _support(self) -> tuple:
        return (tuple(self.event_shape), np.asarray(self.low).tolist(), np.asarray(self.high).tolist())

    def _describe(self) -> str:
        return f"{type(self).__name__} of dimension {self.event_shape[-1]} in [{self.low}, {self.high}]"

    def log_prob(self, value: Any) -> jax.Array:
        value = check_value(type(self).__name__, value, self.batch_shape, self.event_shape, integer=False)
        eps = 1e-6 * (self.high - self.low) / 2.0
        return super().log_prob(jnp.clip(value, self.low + eps, self.high - eps))

    def kl_divergence(self, other: Any, **kwargs: Any) -> jax.Array:
        self._check_kl_partner(other, SquashedGaussian)
        raise ValueError(f"{type(self).__name__}.kl: no closed form for tanh-squashed Gaussians; "
                         f"expected a DiagGaussian pair; received {self._describe()} and {other._describe()}")

    def sample_and_log_prob(self, *, seed: jax.Array, sample_shape: Any = ()) -> tuple[jax.Array, jax.Array]:
        """Reparameterised sample and its log-prob, computed from the pre-squash sample (stable
        near the bounds, unlike inverting tanh)."""
        u = self.distribution.sample(seed=seed, sample_shape=sample_shape)
        y, log_det = self.bijector.forward_and_log_det(u)
        return y, self.distribution.log_prob(u) - log_det

    def entropy(self) -> jax.Array:
        raise ValueError("SquashedGaussian has no closed-form entropy; use -logp of samples.")

    def mode(self) -> jax.Array:
        return self.bijector.forward(self.distribution.loc)

    def to_deterministic(self) -> Deterministic:
        return Deterministic(self.mode(), event_ndims=1)
