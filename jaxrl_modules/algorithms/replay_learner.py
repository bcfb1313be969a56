"""`ReplayLearner`: an off-policy learner (DQN, SAC) as a `learner.Learner` of rollouts.

Each rollout's transitions go through the n-step window into the replay buffer, then the wrapped
learner takes one `update` on a sampled batch, once `num_steps_sampled_before_learning_starts` env
steps were sampled. Buffer and window are part of the state, so the host loop and the all-in-jit
loop run DQN and SAC exactly as they run PPO: sample a rollout, `learn` from it.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxrl_modules.algorithms import replay_buffer as rb
from jaxrl_modules.algorithms.learner import Rollout
from jaxrl_modules.columns import Columns
from jaxrl_modules.spaces import space_zeros

_COLUMNS = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.TERMINATEDS, Columns.NEXT_OBS)  # nstep_push order


class ReplayState(NamedTuple):
    learner: Any  # the wrapped learner's state (params, target params, optimizer state, ...)
    buffer: rb.ReplayBufferState
    nstep: rb.NStepWindow


def transitions(rollout: Rollout) -> dict:
    """One-step transitions `[T, N]` of a rollout. A host rollout knows the observation each episode
    ended in ("final_obs"): a truncated step bootstraps from it and only a termination is terminal. A
    gymnax rollout resets in the same step, so the next observation is the next step's (the last one
    `last_obs`) and every episode end is terminal, nothing bootstrapped from the reset observation."""
    traj = rollout.traj
    term = traj[Columns.TERMINATEDS]
    if "final_obs" in traj:
        next_obs, terminal = traj["final_obs"], term
    else:
        obs = traj[Columns.OBS]
        next_obs = jnp.concatenate([obs[1:], jnp.asarray(rollout.last_obs)[None]], axis=0)
        terminal = term | traj[Columns.TRUNCATEDS]
    return {Columns.OBS: traj[Columns.OBS], Columns.ACTIONS: traj[Columns.ACTIONS],
            Columns.REWARDS: traj[Columns.REWARDS], Columns.NEXT_OBS: next_obs, Columns.TERMINATEDS: terminal}


class ReplayLearner:
    """Wraps an off-policy learner (`init`, `update(state, batch, rng)` on a sampled batch, `params`,
    `with_params`: DQN's, SAC's, a user's) for `num_envs` envs. Before learning starts (and so before
    any update) its metrics are reported as zeros."""

    def __init__(self, learner: Any, config: Any, num_envs: int):
        self.learner, self.module, self.config, self.num_envs = learner, learner.module, config, int(num_envs)

    def init(self, params: Any) -> ReplayState:
        cfg, module = self.config, self.module
        obs = space_zeros(module.observation_space, ())
        example = {Columns.OBS: obs, Columns.ACTIONS: space_zeros(module.action_space, ()),
                   Columns.REWARDS: jnp.zeros(()), Columns.NEXT_OBS: obs, Columns.TERMINATEDS: jnp.zeros((), bool)}
        buffer = rb.init_buffer({**example, "discounts": jnp.zeros(())}, int(cfg.replay_buffer_config.get("capacity", 50000)))
        return ReplayState(self.learner.init(params), buffer, rb.init_nstep(example, getattr(cfg, "n_step", 1), self.num_envs))

    def params(self, state: ReplayState) -> Any:
        return self.learner.params(state.learner)

    def with_params(self, state: ReplayState, params: Any) -> ReplayState:
        return state._replace(learner=self.learner.with_params(state.learner, params))

    def update(self, state: ReplayState, batch: dict, rng: Optional[jax.Array] = None) -> tuple[ReplayState, dict]:
        """The wrapped learner's update on a sampled batch; the buffer and window stay as they are."""
        learner, metrics = self.learner.update(state.learner, batch, rng)
        return state._replace(learner=learner), metrics

    def learn(self, state: ReplayState, rollout: Rollout, rng: jax.Array) -> tuple[ReplayState, dict]:
        """Stores the rollout's n-step transitions, then (from `num_steps_sampled_before_learning_starts`
        lifetime env steps on) one update on a batch of `train_batch_size` sampled transitions."""
        cfg = self.config
        dtypes = jax.tree_util.tree_map(lambda w: w.dtype, state.nstep.data)
        steps = {k: jax.tree_util.tree_map(lambda x, d: jnp.asarray(x).astype(d), v, dtypes[k])
                 for k, v in transitions(rollout).items()}

        def push(window, step):
            window, out, valid = rb.nstep_push(window, step, cfg.gamma, *_COLUMNS)
            return window, (out, valid)

        nstep, (out, valid) = jax.lax.scan(push, state.nstep, steps)
        flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), out)
        buffer = rb.add(state.buffer, flat, valid.reshape(-1))
        k_sample, k_update = jax.random.split(rng)
        new, metrics = self.learner.update(state.learner, rb.sample(buffer, k_sample, cfg.total_batch_size()), k_update)
        learn = rollout.env_steps >= cfg.num_steps_sampled_before_learning_starts
        learner = jax.tree_util.tree_map(lambda a, b: jnp.where(learn, a, b), new, state.learner)
        metrics = jax.tree_util.tree_map(lambda m: jnp.where(learn, m, jnp.zeros_like(m)), metrics)
        return ReplayState(learner, buffer, nstep), metrics
