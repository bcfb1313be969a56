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
import numpy as np


def describe(x: Any) -> str:
    """`float32[8, 3]` for arrays, the type name (and structure) for anything else."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{x.dtype}{list(x.shape)}"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (tuple, list)):
        inner = ", ".join(describe(v) for v in x)
        return f"({inner})" if isinstance(x, tuple) else f"[{inner}]"
    return type(x).__name__


def as_array(x: Any, where: str, expected: str) -> Any:
    """`x` if it has a shape and dtype; Python/NumPy numbers and lists of them as arrays;
    anything else is a TypeError naming `where`, what was expected and what was received."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    if isinstance(x, (bool, int, float, np.number)) or (isinstance(x, list) and x and not isinstance(x[0], (dict, tuple))):
        try:
            arr = np.asarray(x)
        except ValueError:
            arr = None
        if arr is not None and arr.dtype != object and (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            return jnp.asarray(arr)
    raise TypeError(f"{where}: expected {expected}; received {describe(x)}")


def check_dist_inputs(name: str, inputs: Any, expected_last: Optional[int] = None, what: str = "") -> Any:
    """Trace-time check of `from_logits` inputs: a float array `[..., expected_last]`."""
    expected = f"a float array [B, {expected_last if expected_last is not None else 'd'}]{what}"
    inputs = as_array(inputs, f"{name}.from_logits", expected)
    if not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise TypeError(f"{name}.from_logits: expected {expected}; received {describe(inputs)} (not a float dtype)")
    if inputs.ndim < 1:
        raise ValueError(f"{name}.from_logits: expected {expected}; received a scalar {describe(inputs)}")
    if expected_last is not None and inputs.shape[-1] != expected_last:
        raise ValueError(f"{name}.from_logits: expected {expected}; received {describe(inputs)}")
    return inputs


def check_value(name: str, value: Any, batch_shape: tuple, event_shape: tuple, integer: bool) -> Any:
    """Trace-time check of a `logp` value: `[*sample, *batch_shape, *event_shape]` of an integer
    (discrete) or float (continuous) dtype. Returns it as an array."""
    want = tuple(batch_shape) + tuple(event_shape)
    kind = "an integer" if integer else "a float"
    expected = f"{kind} array of shape [..., {', '.join(map(str, want))}]" if want else f"{kind} array"
    value = as_array(value, f"{name}.logp", expected)
    is_int = jnp.issubdtype(value.dtype, jnp.integer)
    if integer and not is_int:
        raise TypeError(f"{name}.logp: expected {expected} (actions of a discrete space); received {describe(value)}")
    if not integer and not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"{name}.logp: expected {expected} (actions of a Box space); received {describe(value)}")
    if value.ndim < len(want) or tuple(value.shape[value.ndim - len(want):]) != want:
        raise ValueError(f"{name}.logp: expected {expected}; received {describe(value)}")
    return value


class RLlibDistributionMixin:
    """RLlib names on top of a distrax distribution. Log-probs are always `[B]`."""

    _partial_kwargs: ClassVar[dict] = {}
    _accepted_kwargs: ClassVar[tuple] = ()  # what `from_logits` / `get_partial_dist_cls` take

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "RLlibDistributionMixin":
        raise NotImplementedError

    @classmethod
    def get_partial_dist_cls(cls, **partial_kwargs: Any) -> type:
        """A subclass whose `from_logits` and `required_input_dim` get `partial_kwargs`."""
        cls._check_kwargs(partial_kwargs, "get_partial_dist_cls")
        clash = set(partial_kwargs) & set(cls._partial_kwargs)
        if clash:
            raise ValueError(f"{cls.__name__} already binds {sorted(clash)}; cannot bind them again.")
        bound = {**cls._partial_kwargs, **partial_kwargs}
        return type(cls.__name__, (cls,), {"_partial_kwargs": bound, "__module__": cls.__module__})

    @classmethod
    def _check_kwargs(cls, kwargs: dict, where: str) -> None:
        unknown = sorted(set(kwargs) - set(cls._accepted_kwargs))
        if unknown:
            raise TypeError(f"{cls.__name__}.{where}: unknown argument(s) {unknown}; "
                            f"expected only {sorted(cls._accepted_kwargs)}")

    @classmethod
    def _bound(cls, kwargs: dict) -> dict:
        cls._check_kwargs(kwargs, "from_logits")
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

    def _support(self) -> tuple:
        """What must agree for `kl` with another distribution of the same family."""
        return ()

    def _describe(self) -> str:
        return type(self).__name__

    def _check_kl_partner(self, other: Any, family: type) -> None:
        """Trace-time: `other` is a `family` distribution over the same support, else an error
        naming this distribution, what was expected and what was received."""
        name = f"{type(self).__name__}.kl"
        if not isinstance(other, family):
            got = other._describe() if isinstance(other, RLlibDistributionMixin) else type(other).__name__
            raise TypeError(f"{name}: expected another {self._describe()}; received {got}")
        if self._support() != other._support():
            raise ValueError(f"{name}: expected another {self._describe()}; received {other._describe()}")

    def to_deterministic(self) -> "Deterministic":
        raise NotImplementedError


class Deterministic(RLlibDistributionMixin, distrax.Deterministic):
    """A point mass whose log-prob and entropy sum over `event_ndims` trailing axes.

    distrax's Deterministic is elementwise; RLlib's gives `[B, d]` log-probs. Ours gives
    `[B]`, so the log-probs of all distributions add up (as the autoregressive example needs).
    """

    _accepted_kwargs = ("event_ndims",)

    def __init__(self, loc: jax.Array, event_ndims: int = 0):
        super().__init__(loc=loc)
        self._event_ndims = event_ndims

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "Deterministic":
        kwargs = cls._bound(kwargs)
        inputs = as_array(inputs, f"{cls.__name__}.from_logits", "an array [B, d] of actions")
        return cls(inputs, event_ndims=kwargs.get("event_ndims", 1))

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        return int(jnp.prod(jnp.array(space.shape))) if space.shape else 1

    def _reduce(self, x: jax.Array) -> jax.Array:
        return x.sum(axis=tuple(range(-self._event_ndims, 0))) if self._event_ndims else x

    def log_prob(self, value: Any) -> jax.Array:
        split = self.loc.ndim - self._event_ndims
        value = check_value(type(self).__name__, value, self.loc.shape[:split], self.loc.shape[split:],
                            integer=bool(jnp.issubdtype(self.loc.dtype, jnp.integer)))
        return self._reduce(super().log_prob(value))

    def entropy(self) -> jax.Array:
        return self._reduce(super().entropy())

    def mode(self) -> jax.Array:
        return self.loc

    def to_deterministic(self) -> "Deterministic":
        return self
