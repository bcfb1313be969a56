"""Rollout -> PPO train batch: values, GAE, standardised advantages (pure, jittable). `rollout_batch`
is what `PPOLearner.learn` batches through: single-agent, stateful (sequences) or multi-agent."""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxrl_modules.algorithms.targets import compute_gae, standardize
from jaxrl_modules.algorithms.learner import Rollout
from jaxrl_modules.columns import Columns

def values_of(learner: Any, params: Any, batch: dict) -> Any:
    """Value predictions (`[B]`, or `{mid: [B]}`) through forward_train's embeddings, so a
    shared encoder (custom MultiRLModule) is used exactly as in the loss."""
    fwd = learner.train_fn(params, batch)
    if not learner.is_multi:
        return learner.module.compute_values_fn()(params, batch, fwd.get(Columns.EMBEDDINGS))
    return {mid: learner.module[mid].compute_values_fn()(params[mid], batch[mid], fwd[mid].get(Columns.EMBEDDINGS))
            for mid in batch}


def rollout_batch(learner: Any, state: Any, rollout: Rollout) -> dict:
    """The PPO train batch of a rollout: a multi-agent rollout (`{module_id: [T, A] traj}`) per module,
    a stateful module's (STATE_IN in traj) as `sequence_batch`, else `single_agent_batch`."""
    traj, last, cfg = rollout.traj, rollout.last_obs, learner.config
    if learner.is_multi:
        return multi_agent_batch(learner, state, traj, last, cfg)
    params = learner.params(state)
    if Columns.STATE_IN in traj:
        return sequence_batch(learner, params, traj, last, cfg, learner.module.config().max_seq_len)
    return single_agent_batch(learner, params, traj, last, cfg)


def multi_agent_batch(learner: Any, state: Any, traj: dict, last_obs: dict, cfg: Any) -> dict:
    """`{module_id: [T, A] traj}` (A agents' rows, LOSS_MASK where an agent is inactive or mapped
    elsewhere) -> `{module_id: batch}`, the values of every module in one `learner.values` call."""
    T, A = next(iter(traj.values()))[Columns.REWARDS].shape
    flat = {mid: {Columns.OBS: jax.tree_util.tree_map(lambda x, last: jnp.concatenate([_flat(x, T * A), last]),
                                                      t[Columns.OBS], last_obs[mid])} for mid, t in traj.items()}
    values = learner.values(state, flat)
    return {mid: build_train_batch(t, values[mid][: T * A].reshape(T, A), values[mid][T * A:], cfg.gamma, cfg.lambda_)
            for mid, t in traj.items()}


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
    batch = {k: jax.tree_util.tree_map(lambda x: _flat(x, n), traj[k]) for k in TRAIN_COLUMNS}
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


RESETS = "resets"  # [B, T] bool: the recurrent state restarts before step t (a new episode)


def sequence_batch(learner: Any, params: Any, traj: dict, last_obs: Any, cfg: Any, max_seq_len: int) -> dict:
    """Trajectory of a stateful module `[T, N, ...]` (with STATE_IN per step) -> chunks of
    `max_seq_len` steps `[N * T / L, L, ...]`, each with the state it starts from and a RESETS
    column that restarts the state where an episode ends inside a chunk.

    Both loops batch through here: the jit path (gymnax resets in the same step, nothing bootstrapped)
    and the host loop, whose trajectory may add "final_obs", "bootstrap" and "state_out" (the state
    after each step): truncated steps marked "bootstrap" then add `gamma * V(final_obs)`, valued from
    the state the episode reached, as `build_train_batch` does for stateless modules."""
    T, N = traj[Columns.REWARDS].shape[:2]
    if T % max_seq_len:
        raise ValueError(f"rollout length {T} must be a multiple of max_seq_len {max_seq_len}")
    dones = traj[Columns.TERMINATEDS] | traj[Columns.TRUNCATEDS]
    starts = jnp.concatenate([jnp.zeros((1, N), bool), dones], axis=0)  # [T+1, N]: new episode before step t
    obs_all = jnp.concatenate([traj[Columns.OBS], last_obs[None]], axis=0)
    batch_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    state0 = jax.tree_util.tree_map(lambda x: x[0], traj[Columns.STATE_IN])
    values = values_of(learner, params, {Columns.OBS: batch_major(obs_all), Columns.STATE_IN: state0,
                                         RESETS: batch_major(starts)})
    values = batch_major(values)  # [T+1, N]
    rewards = traj[Columns.REWARDS]
    if "bootstrap" in traj and "state_out" in traj:
        flat = lambda x: x.reshape((T * N,) + x.shape[2:])  # noqa: E731
        final_values = values_of(learner, params, {  # one step from each step's state_out: [T*N, 1]
            Columns.OBS: flat(traj["final_obs"])[:, None],
            Columns.STATE_IN: jax.tree_util.tree_map(flat, traj["state_out"])})
        rewards = rewards + cfg.gamma * final_values.reshape(T, N) * traj["bootstrap"].astype(rewards.dtype)
    advantages, targets = compute_gae(rewards, values[:T], dones, values[T], cfg.gamma, cfg.lambda_)
    columns = {k: traj[k] for k in TRAIN_COLUMNS}
    columns.update({Columns.ADVANTAGES: standardize(advantages), Columns.VALUE_TARGETS: targets, RESETS: starts[:T]})
    chunks = T // max_seq_len

    def chunk(x):  # [T, N, ...] -> [N * chunks, L, ...]
        x = batch_major(x)
        return x.reshape((N * chunks, max_seq_len) + x.shape[2:])

    batch = {k: chunk(v) for k, v in columns.items()}
    batch[Columns.STATE_IN] = jax.tree_util.tree_map(
        lambda s: batch_major(s[::max_seq_len]).reshape((N * chunks,) + s.shape[2:]), traj[Columns.STATE_IN])
    return batch
