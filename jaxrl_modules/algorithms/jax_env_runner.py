"""Sampling from gymnax envs as pure functions, for training fully inside `jax.jit`."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxrl_modules.algorithms.action_transform import make_env_action_fn
from jaxrl_modules.columns import Columns


ACTED_COLUMNS = (Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS)  # what a rollout keeps of `act`'s


class RunnerState(NamedTuple):
    obs: Any
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array
    recurrent_state: Any = None  # [N, ...] per env, for stateful modules
    initial_state: Any = None  # the module's initial state (no batch axis): where a new episode's state starts


class JaxEnvRunner:
    """`num_envs` copies of a gymnax env (auto-resetting), vmapped; `rollout` is a `lax.scan`.

    The runner holds configuration only (env, env params, connector, action mapping): everything a
    rollout changes or needs, the recurrent initial state included, lives in the `RunnerState`."""

    def __init__(self, env: Any, env_params: Any, num_envs: int, obs_fn: Optional[Callable] = None, *,
                 normalize_actions: bool = True, clip_actions: bool = False):
        self.env, self.env_params, self.num_envs = env, env_params, num_envs
        self.obs_fn = obs_fn or (lambda x: x)
        # module actions -> env actions, right before env.step (the trajectory keeps the module's)
        self.to_env = make_env_action_fn(self.action_space, normalize_actions, clip_actions)

    @property
    def observation_space(self):  # gymnax space -> gymnasium space of the (connected) obs
        from jaxrl_modules.envs.gymnax_spaces import to_gymnasium

        return to_gymnasium(self.env.observation_space(self.env_params))

    @property
    def action_space(self):
        from jaxrl_modules.envs.gymnax_spaces import to_gymnasium

        return to_gymnasium(self.env.action_space(self.env_params))

    def last_obs(self, state: RunnerState) -> Any:
        """The module's observation after a rollout (what learners bootstrap from)."""
        return self.obs_fn(state.obs)

    def reset(self, rng: jax.Array, initial_state: Any = None) -> RunnerState:
        """Fresh envs; `initial_state` (a module's, without batch axis) is broadcast per env and kept in
        the returned state, so episodes that start during a rollout start from it."""
        obs, env_state = jax.vmap(self.env.reset, (0, None))(jax.random.split(rng, self.num_envs), self.env_params)
        zeros = jnp.zeros(self.num_envs)
        if not initial_state:
            return RunnerState(obs, env_state, zeros, zeros)
        initial_state = jax.tree_util.tree_map(jnp.asarray, initial_state)
        state = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (self.num_envs,) + x.shape), initial_state)
        return RunnerState(obs, env_state, zeros, zeros, state, initial_state)

    def rollout(self, act_fn: Callable, params: Any, state: RunnerState, rng: jax.Array, steps: int,
                t0: Any = None) -> tuple:
        """`steps` env steps per env with `act_fn(params, batch, rng)` (a forward_exploration); with `t0`
        (the lifetime env-step count before the rollout), `act_fn(..., t=t0 + i * num_envs)` at step i,
        for an exploration that reads it (DQN's epsilon schedule).

        Returns `(state, traj, stats)`: traj columns `[T, N, ...]` (OBS, ACTIONS, ACTION_LOGP and
        ACTION_DIST_INPUTS where the exploration gives them, REWARDS, TERMINATEDS, TRUNCATEDS; gymnax resets
        in the same step, so truncations are not bootstrapped), stats the sum and count of finished episodes.
        """
        def step(state: RunnerState, x):
            key, i = x
            k_act, k_env = jax.random.split(key)
            obs = self.obs_fn(state.obs)
            kw = {} if t0 is None else {"t": t0 + i * self.num_envs}
            if state.recurrent_state is None:
                out = act_fn(params, {Columns.OBS: obs}, k_act, **kw)
            else:  # one timestep of a [B, T] sequence, the state carried per env
                out = act_fn(params, {Columns.OBS: obs[:, None], Columns.STATE_IN: state.recurrent_state}, k_act, **kw)
                next_rec = out.pop(Columns.STATE_OUT)
                out = jax.tree_util.tree_map(lambda x: x[:, 0], out)
            next_obs, env_state, reward, term, trunc, _ = jax.vmap(self.env.step, (0, 0, 0, None))(
                jax.random.split(k_env, self.num_envs), state.env_state, self.to_env(out[Columns.ACTIONS]), self.env_params)
            done = term | trunc
            ret, length = state.episode_return + reward, state.episode_length + 1
            rec = {Columns.OBS: obs, Columns.REWARDS: reward, Columns.TERMINATEDS: term, Columns.TRUNCATEDS: trunc,
                   "ended_return": jnp.where(done, ret, 0.0)}
            rec.update({k: out[k] for k in ACTED_COLUMNS if k in out})  # a Q-network's exploration has no logp
            recurrent = None
            if state.recurrent_state is not None:
                rec[Columns.STATE_IN] = state.recurrent_state
                recurrent = jax.tree_util.tree_map(  # a new episode starts from the initial state
                    lambda x, init: jnp.where(done.reshape((-1,) + (1,) * (x.ndim - 1)), init, x),
                    next_rec, state.initial_state)
            new = state._replace(obs=next_obs, env_state=env_state, episode_return=jnp.where(done, 0.0, ret),
                                 episode_length=jnp.where(done, 0.0, length), recurrent_state=recurrent)
            return new, rec

        state, traj = jax.lax.scan(step, state, (jax.random.split(rng, steps), jnp.arange(steps, dtype=jnp.int32)))
        ended = traj.pop("ended_return")
        stats = {"return_sum": ended.sum(), "episodes": (traj[Columns.TERMINATEDS] | traj[Columns.TRUNCATEDS]).sum()}
        return state, traj, stats
