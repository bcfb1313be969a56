"""Trajectory -> PPO train batch: values, GAE, standardised advantages (pure, jittable)."""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxrl_modules.algorithms.gae import compute_gae, standardize
from jaxrl_modules.algorithms.ppo.learner import values_of
from jaxrl_modules.columns import Columns

TRAIN_COLUMNS = (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS)


def _flat(x: jax.Array, n: int) -> jax.Array:
    return x.reshape((n,) + x.shape[2:])


def build_train_batch(traj: dict, values: jax.Array, last_value: jax.Array, gamma: float, lambda_: float,
                      final_values: Optional[jax.Array] = None) -> dict:
    """Time-major trajectory `[T, N, ...]` -> flat `[T*N]` batch with ADVANTAGES and VALUE_TARGETS.

    Truncated steps with a known final observation bootstrap `gamma * V(final_obs)`.
    A LOSS_MASK `[T, N]` column in `traj` (multi-agent: agent active and mapped) is kept.
    """
    rewards = traj[Columns.REWARDS]
    dones = traj[Columns.TERMINATEDS]
    if Columns.TRUNCATEDS in traj:
        dones = dones | traj[Columns.TRUNCATEDS]
    if final_values is not None:
        rewards = rewards + gamma * final_values * traj["bootstrap"].astype(rewards.dtype)
    advantages, targets = compute_gae(rewards, values, dones, last_value, gamma, lambda_)
    mask = traj.get(Columns.LOSS_MASK)
    advantages = standardize(advantages, mask)
    n = rewards.shape[0] * rewards.shape[1]
    batch = {k: _flat(traj[k], n) for k in TRAIN_COLUMNS}
    batch[Columns.ADVANTAGES] = _flat(advantages, n)
    batch[Columns.VALUE_TARGETS] = _flat(targets, n)
    if mask is not None:
        batch[Columns.LOSS_MASK] = _flat(mask, n)
    return batch


def single_agent_batch(learner: Any, params: Any, traj: dict, last_obs: Any, cfg: Any) -> dict:
    """Values for every obs (plus the bootstrap obs) in one forward, then `build_train_batch`."""
    T, N = traj[Columns.REWARDS].shape[:2]
    obs = [_flat(traj[Columns.OBS], T * N), last_obs]
    has_final = "final_obs" in traj
    if has_final:
        obs.append(_flat(traj["final_obs"], T * N))
    all_values = values_of(learner, params, {Columns.OBS: jnp.concatenate(obs)})
    values = all_values[: T * N].reshape(T, N)
    last_value = all_values[T * N: T * N + N]
    final_values = all_values[T * N + N:].reshape(T, N) if has_final else None
    return build_train_batch(traj, values, last_value, cfg.gamma, cfg.lambda_, final_values)
