"""Generalised advantage estimation as a pure, time-major function (rlax style)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def compute_gae(rewards: jax.Array, values: jax.Array, dones: jax.Array, last_value: jax.Array,
                gamma: float, lambda_: float) -> tuple[jax.Array, jax.Array]:
    """GAE(λ) advantages and value targets.

    rewards, values, dones: `[T, ...]` (dones = the episode ended after step t, so the
    next value is not bootstrapped); last_value: `[...]`, the value of the observation
    after step T-1. Truncated steps should carry `reward + gamma * V(final_obs)` and
    done = 1. Returns `(advantages, value_targets)`, both `[T, ...]`.
    Schulman et al. 2016, https://arxiv.org/abs/1506.02438.
    """
    chex.assert_equal_shape([rewards, values, dones])
    chex.assert_equal_shape([values[0], last_value])
    not_done = 1.0 - dones.astype(values.dtype)

    def step(carry, x):
        gae, next_value = carry
        reward, value, nd = x
        delta = reward + gamma * next_value * nd - value
        gae = delta + gamma * lambda_ * nd * gae
        return (gae, value), gae

    _, advantages = jax.lax.scan(step, (jnp.zeros_like(last_value), last_value), (rewards, values, not_done),
                                 reverse=True)
    return advantages, advantages + values


def standardize(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """RLlib's advantage standardisation: (x - mean) / max(1e-4, std), over valid entries."""
    if mask is None:
        return (x - x.mean()) / jnp.maximum(1e-4, x.std())
    m = mask.astype(x.dtype)
    n = jnp.maximum(m.sum(), 1.0)
    mean = (x * m).sum() / n
    std = jnp.sqrt((((x - mean) ** 2) * m).sum() / n)
    return (x - mean) / jnp.maximum(1e-4, std)
