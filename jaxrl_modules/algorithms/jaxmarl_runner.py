"""Sampling from JaxMARL multi-agent envs as pure functions (a `runner.JaxRunner`), for training
fully inside `jax.jit` (issue 12, in progress): one shared policy, or `multi_agent()` policies.

One shared policy sees every agent of every env as one batch row: `num_envs` vmapped envs of A
agents give `[num_envs * A]` rows per step, so the trajectory is `[T, num_envs * A, ...]` and any
single-module learner (PPO's) trains on it as it trains on `num_envs * A` single-agent envs. An
episode's return is the sum over its agents (RLlib's multi-agent definition).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.columns import Columns

JAXMARL_PREFIX = "jaxmarl:"


def is_jaxmarl(env: Any) -> bool:
    return isinstance(env, str) and env.startswith(JAXMARL_PREFIX)


def make_jaxmarl(env: str, env_config: Optional[dict] = None) -> Any:
    """The JaxMARL env of `"jaxmarl:<name>"` (`jaxmarl.make(name, **env_config)`); jaxmarl is imported
    only here. An unknown name is a ValueError listing the close registered names."""
    import difflib

    import jaxmarl

    name = env[len(JAXMARL_PREFIX):]
    if name not in jaxmarl.registered_envs:
        close = difflib.get_close_matches(name, jaxmarl.registered_envs, n=3)
        raise ValueError(f"Unknown JaxMARL environment {name!r}; expected one of jaxmarl.registered_envs"
                         f"{' such as ' + str(close) if close else ''}")
    return jaxmarl.make(name, **(env_config or {}))


def to_gymnasium(space: Any) -> gym.Space:
    """A JaxMARL Box/Discrete space as a gymnasium space."""
    from jaxmarl.environments import spaces

    if isinstance(space, spaces.Discrete):
        return gym.spaces.Discrete(int(space.n))
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return gym.spaces.Box(low, high, shape, np.float32)
    raise ValueError(f"Unsupported JaxMARL space {space!r}: expected a Box or Discrete space")


class MarlRunnerState(NamedTuple):
    obs: Any  # [num_envs * A, ...]: agent-major within each env
    env_state: Any
    episode_return: jax.Array  # [num_envs]: the sum over agents
    episode_length: jax.Array


class JaxMarlRunner:
    """`num_envs` copies of a JaxMARL env (auto-resetting), vmapped, every agent acting through one
    shared policy. Configuration only: everything a rollout changes is in `MarlRunnerState`."""

    def __init__(self, env: Any, num_envs: int, mapping: Optional[dict] = None, module_ids: Optional[list] = None):
        """`mapping` (agent id -> ModuleID; None: one shared single-agent module) makes the rollout act
        with a MultiRLModule and record one `[T, num_envs * A]` trajectory per module, each with every
        row and a LOSS_MASK of the agents mapped to it (fixed shapes whatever the mapping, so identical
        policies train stacked as one vmapped update)."""
        self.env, self.num_envs = env, int(num_envs)
        self.agents = list(env.agents)
        self.num_agents = len(self.agents)
        self.mapping = dict(mapping) if mapping is not None else None
        self.module_ids = (list(module_ids) if module_ids is not None else sorted(set(self.mapping.values()))
                           ) if self.mapping else None  # every policy acts (and gets a batch), mapped or not
        spaces = {a: (to_gymnasium(env.observation_space(a)), to_gymnasium(env.action_space(a))) for a in self.agents}
        first = spaces[self.agents[0]]
        different = [a for a, s in spaces.items() if s != first]
        if different:
            raise ValueError(f"a shared policy needs every agent's observation and action spaces to be equal; agents "
                             f"{different} differ from {self.agents[0]!r} ({first})")
        self.observation_space, self.action_space = first
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError(f"JaxMARL envs with {type(self.action_space).__name__} action spaces are not supported yet "
                             f"(issue 12); expected Discrete actions, as in MPE, SMAX and Overcooked; got {self.action_space}")
        self.obs_fn: Callable = lambda x: x  # noqa: E731

    def module_masks(self) -> dict:
        """`{module_id: [num_envs * A] bool}`: the rows whose agent maps to the module."""
        per_agent = {mid: jnp.asarray([self.mapping[a] == mid for a in self.agents]) for mid in self.module_ids}
        return {mid: jnp.tile(m, self.num_envs) for mid, m in per_agent.items()}

    def module_batch(self, obs: jax.Array) -> dict:
        """The forward batch of `[num_envs * A]` rows: one module's, or every module's (all rows) for a mapping."""
        return {Columns.OBS: obs} if self.mapping is None else {mid: {Columns.OBS: obs} for mid in self.module_ids}

    def combined_actions(self, out: dict) -> jax.Array:
        """Each row's action: the module's, or (a mapping) that of the module its agent maps to."""
        if self.mapping is None:
            return out[Columns.ACTIONS]
        masks = self.module_masks()
        return sum(jnp.where(masks[mid], out[mid][Columns.ACTIONS], 0) for mid in self.module_ids)

    def last_obs(self, state: MarlRunnerState) -> Any:
        """The module's observation after a rollout (per module for a mapping), what learners bootstrap from."""
        obs = self.obs_fn(state.obs)
        return obs if self.mapping is None else {mid: obs for mid in self.module_ids}

    def _rows(self, per_agent: dict) -> jax.Array:
        """`{agent: [num_envs, ...]}` -> `[num_envs * A, ...]` (agent-major within each env)."""
        stacked = jnp.stack([per_agent[a] for a in self.agents], axis=1)
        return stacked.reshape((self.num_envs * self.num_agents,) + stacked.shape[2:])

    def reset(self, rng: jax.Array, initial_state: Any = None) -> MarlRunnerState:
        if initial_state:
            raise ValueError("JaxMARL envs train stateless modules only so far; expected use_lstm=False")
        with jax.numpy_rank_promotion("allow"):  # JaxMARL's own code broadcasts implicitly
            obs, env_state = jax.vmap(self.env.reset)(jax.random.split(rng, self.num_envs))
        zeros = jnp.zeros(self.num_envs)
        return MarlRunnerState(self._rows(obs), env_state, zeros, zeros)

    def rollout(self, act_fn: Callable, params: Any, state: MarlRunnerState, rng: jax.Array, steps: int,
                t0: Any = None) -> tuple:
        """`steps` env steps of every env: `(state, traj [T, num_envs * A, ...], stats)`; TERMINATEDS is each
        agent's done (JaxMARL resets in the same step, so nothing is bootstrapped)."""
        E, A = self.num_envs, self.num_agents

        def step(state: MarlRunnerState, x):
            key, i = x
            k_act, k_env = jax.random.split(key)
            obs_in = self.obs_fn(state.obs)  # the connector's view, if one is set
            kw = {} if t0 is None else {"t": t0 + i * E}
            out = act_fn(params, self.module_batch(obs_in), k_act, **kw)
            acted = self.combined_actions(out)
            actions = acted.reshape((E, A) + acted.shape[1:])
            with jax.numpy_rank_promotion("allow"):  # JaxMARL's own code broadcasts implicitly
                obs, env_state, reward, done, _ = jax.vmap(self.env.step)(
                    jax.random.split(k_env, E), state.env_state, {a: actions[:, j] for j, a in enumerate(self.agents)})
            team = jnp.stack([reward[a] for a in self.agents], axis=1).sum(axis=1)
            ended = done["__all__"]
            ret = state.episode_return + team
            common = {Columns.OBS: obs_in, Columns.ACTIONS: acted, Columns.REWARDS: self._rows(reward),
                      Columns.TERMINATEDS: self._rows(done), Columns.TRUNCATEDS: jnp.zeros(E * A, bool)}
            acted_cols = (Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS)
            if self.mapping is None:
                rec = {**common, **{k: out[k] for k in acted_cols}}
            else:
                masks = self.module_masks()
                rec = {mid: {**common, **{k: out[mid][k] for k in acted_cols}, Columns.LOSS_MASK: masks[mid]}
                       for mid in self.module_ids}
            rec.update({"ended_return": jnp.where(ended, ret, 0.0), "ended": ended})
            new = MarlRunnerState(self._rows(obs), env_state, jnp.where(ended, 0.0, ret),
                                  jnp.where(ended, 0.0, state.episode_length + 1))
            return new, rec

        state, traj = jax.lax.scan(step, state, (jax.random.split(rng, steps), jnp.arange(steps, dtype=jnp.int32)))
        ended_return, ended = traj.pop("ended_return"), traj.pop("ended")
        return state, traj, {"return_sum": ended_return.sum(), "episodes": ended.sum()}

    def evaluate(self, module: Any, params: Any, episodes: int, seed: int = 10_000, cache: Optional[dict] = None,
                 max_steps: int = 100_000) -> list[float]:
        """Team returns (summed over agents) of `episodes` complete episodes, one per vmapped env, every
        agent acting deterministically (forward_inference); one jitted while-loop, cached per `episodes`
        in `cache`. A ValueError when an episode has not ended within `max_steps` steps."""
        cache = {} if cache is None else cache
        if episodes not in cache:
            runner = JaxMarlRunner(self.env, episodes, self.mapping, self.module_ids)
            runner.obs_fn = self.obs_fn
            infer = module.phase_fn("inference")

            def run(p: Any, rng: jax.Array) -> tuple:
                k_reset, k_run = jax.random.split(rng)
                state = runner.reset(k_reset)
                zeros, done0 = jnp.zeros(episodes), jnp.zeros(episodes, bool)

                def body(carry):
                    state, returns, done, t = carry
                    actions = runner.combined_actions(infer(p, runner.module_batch(runner.obs_fn(state.obs))))
                    actions = actions.reshape((episodes, runner.num_agents) + actions.shape[1:])
                    with jax.numpy_rank_promotion("allow"):  # JaxMARL's own code broadcasts implicitly
                        obs, env_state, reward, env_done, _ = jax.vmap(runner.env.step)(
                            jax.random.split(jax.random.fold_in(k_run, t), episodes), state.env_state,
                            {a: actions[:, j] for j, a in enumerate(runner.agents)})
                    team = jnp.stack([reward[a] for a in runner.agents], axis=1).sum(axis=1)
                    returns = returns + jnp.where(done, 0.0, team)
                    state = state._replace(obs=runner._rows(obs), env_state=env_state)
                    return state, returns, done | env_done["__all__"], t + 1

                _, returns, done, _ = jax.lax.while_loop(lambda c: ~c[2].all() & (c[3] < max_steps), body,
                                                         (state, zeros, done0, jnp.zeros((), jnp.int32)))
                return returns, done

            cache[episodes] = jax.jit(run)
        returns, done = jax.device_get(cache[episodes](params, jax.random.key(seed)))
        if not done.all():
            raise ValueError(f"{int((~done).sum())} of {episodes} evaluation episodes did not end within {max_steps} "
                             "steps; expected episodes that end")
        return [float(r) for r in returns]
