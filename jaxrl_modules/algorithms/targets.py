"""The primitives the losses share, as pure functions (rlax style): GAE(λ) advantages and value
targets (time-major), TD targets for Q-learning, advantage standardisation and masked means."""

from __future__ import annotations

from typing import Any, Optional

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


def masked_mean(x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
    """Mean of `x` over the entries where `mask` is true (all of them when `mask` is None)."""
    if mask is None:
        return x.mean()
    m = mask.astype(x.dtype)
    return (x * m).sum() / jnp.maximum(m.sum(), 1.0)


def td_targets(rewards: jax.Array, terminateds: jax.Array, q_next_target: jax.Array, q_next_online: Any,
               gamma: Any) -> jax.Array:
    """`r + gamma * (1 - terminated) * Q_target(s', a*)`, a* = argmax of the online net
    (double Q) when `q_next_online` is given, else of the target net. Shapes `[B]`, `[B, n]`;
    `gamma` a scalar or `[B]` (n-step transitions carry their own `gamma ** steps`)."""
    chooser = q_next_target if q_next_online is None else q_next_online
    best = jnp.take_along_axis(q_next_target, jnp.argmax(chooser, axis=-1)[:, None], axis=-1)[:, 0]
    return rewards + gamma * (1.0 - terminateds.astype(rewards.dtype)) * best
