"""Host-loop sampling from a multi-agent env (dict observations keyed by agent id).

Every policy gets fixed-shape `[T, num_agents]` columns plus a LOSS_MASK (agent active
and mapped to that policy), so the jitted update compiles once whatever the mapping does.
"""

from __future__ import annotations

import inspect
from collections import deque
from typing import Any, Callable, Optional

import jax
import numpy as np

from jaxrl_modules.algorithms.nonfinite import check_rows
from jaxrl_modules.algorithms.action_transform import env_action_fn
from jaxrl_modules.envs.registry import make_env
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.validation import seed_int


def is_multi_agent_env(env: Any) -> bool:
    return hasattr(env, "possible_agents") and getattr(env, "observation_space", None) is None


def agent_spaces(env: Any, agent: Any) -> tuple:
    if hasattr(env, "get_observation_space"):
        return env.get_observation_space(agent), env.get_action_space(agent)
    return env.observation_spaces[agent], env.action_spaces[agent]


def _check_mapping_signature(fn: Callable) -> None:
    """RLlib's signature `policy_mapping_fn(agent_id, episode, **kwargs)`: a TypeError naming the
    setting where `fn` cannot be called with two positional arguments."""
    try:
        inspect.signature(fn).bind("agent", 0)
    except TypeError as err:
        raise TypeError(f"policy_mapping_fn must accept (agent_id, episode, **kwargs); got {fn!r} with signature "
                        f"{inspect.signature(fn)} ({err})") from None
    except ValueError:
        return  # no signature to inspect (a builtin): it is called as it is


class MultiAgentEnvRunner:
    """One multi-agent env, stepped in this process (`num_env_runners > 0` is rejected: no worker processes)."""

    def __init__(self, config: Any, module_ids: list[str]):
        from jaxrl_modules.algorithms.env_runner import reject_env_runners

        reject_env_runners(config, "the multi-agent host loop")
        self.config = config
        self.env = make_env(config.env, config.env_config)
        if not is_multi_agent_env(self.env):
            raise ValueError(f"multi_agent() needs a multi-agent env (with possible_agents); got {config.env!r}")
        self.agents = list(self.env.possible_agents)
        self.module_ids = module_ids
        self.mapping_fn = config.policy_mapping_fn or (lambda agent_id, episode, **kw: DEFAULT_MODULE_ID)
        _check_mapping_signature(self.mapping_fn)
        self.obs_space = agent_spaces(self.env, self.agents[0])[0]
        self.to_env = {a: env_action_fn(config, agent_spaces(self.env, a)[1]) for a in self.agents}
        self.episode_index = 0
        self.completed: deque = deque(maxlen=100)  # the last 100 returns (a history; not episode_return_mean)
        self.completed_per_module: dict = {mid: deque(maxlen=100) for mid in module_ids}
        self.finished_per_module: dict = {mid: [] for mid in module_ids}  # of the last sample() call
        self.num_env_steps = 0
        self._reset()

    def _reset(self) -> None:
        obs, _ = self.env.reset(seed=self.config.seed + self.episode_index)
        self.obs = np.stack([np.asarray(obs[a], np.float32) for a in self.agents])
        self.active = np.ones(len(self.agents), bool)
        self.mapping = {a: self.mapping_fn(a, self.episode_index) for a in self.agents}
        unknown = sorted({m for m in self.mapping.values() if m not in self.module_ids})
        if unknown:
            given = "" if self.config.policy_mapping_fn is not None else (
                f" (no policy_mapping_fn is set, so every agent maps to {DEFAULT_MODULE_ID!r}: set "
                "multi_agent(policy_mapping_fn=...))")
            raise ValueError(f"policy_mapping_fn returned unknown ModuleID(s) {unknown}; policies are {self.module_ids}{given}")
        self.returns = np.zeros(len(self.agents))

    def sample(self, act: Callable, params: Any, rng: jax.Array, steps: int, first_step: int = 0) -> tuple[dict, dict, list]:
        """`act(params, {mid: obs [A, ...]}, rng, t) -> {mid: out}`; `first_step` numbers the steps in
        error messages (as `GymEnvRunner.sample`). Returns per-policy `[T, A]`
        trajectories, per-policy last observations `[A, ...]`, and the returns (summed over agents) of
        the episodes that ended during this call; `finished_per_module` then holds, per module, the
        returns of the agents mapped to it in those episodes."""
        A = len(self.agents)
        mapped = {mid: np.array([self.mapping[a] == mid for a in self.agents]) for mid in self.module_ids}
        cols: dict = {mid: {k: [] for k in (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS,
                                            Columns.REWARDS, Columns.TERMINATEDS, Columns.LOSS_MASK)}
                      for mid in self.module_ids}
        finished = []
        self.finished_per_module = {mid: [] for mid in self.module_ids}
        for t in range(steps):
            obs_now = self.obs.copy()
            check_rows({"env observation": obs_now}, step=first_step + t, row="agent index")
            out = jax.device_get(act(params, {mid: {Columns.OBS: obs_now} for mid in self.module_ids}, rng, t))
            check_rows({f"{mid} action distribution inputs": out[mid][Columns.ACTION_DIST_INPUTS] for mid in self.module_ids},
                       step=first_step + t, row="agent index", allow_neg_inf=True)
            check_rows({f"{mid} actions": out[mid][Columns.ACTIONS] for mid in self.module_ids}, step=first_step + t,
                       row="agent index")
            actions = {a: self.to_env[a](jax.tree_util.tree_map(lambda x: x[i], out[self.mapping[a]][Columns.ACTIONS]))
                       for i, a in enumerate(self.agents) if self.active[i]}
            obs, rew, term, trunc, _ = self.env.step(actions)
            reward, done = np.zeros(A, np.float32), np.zeros(A, bool)
            for i, a in enumerate(self.agents):
                if a in actions:
                    reward[i], done[i] = rew[a], term[a] or trunc[a]
                    self.obs[i] = obs[a]
            check_rows({"env reward": reward}, step=first_step + t, row="agent index")
            for mid in self.module_ids:
                mask = self.active & mapped[mid]
                c = cols[mid]
                c[Columns.OBS].append(obs_now)
                for k in (Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS):
                    c[k].append(out[mid][k])
                c[Columns.REWARDS].append(reward * mask)
                c[Columns.TERMINATEDS].append(done | ~mask)
                c[Columns.LOSS_MASK].append(mask)
            self.returns += reward
            self.active &= ~done
            self.num_env_steps += 1
            if term.get("__all__") or not self.active.any():
                finished.append(float(self.returns.sum()))
                for i, a in enumerate(self.agents):
                    self.completed_per_module[self.mapping[a]].append(float(self.returns[i]))
                    self.finished_per_module[self.mapping[a]].append(float(self.returns[i]))
                self.episode_index += 1
                self._reset()
                mapped = {mid: np.array([self.mapping[a] == mid for a in self.agents]) for mid in self.module_ids}
        self.completed.extend(finished)
        traj = {mid: {k: np.stack(v) for k, v in c.items()} for mid, c in cols.items()}
        return traj, {mid: self.obs.copy() for mid in self.module_ids}, finished

    def close(self) -> None:
        if hasattr(self.env, "close"):
            self.env.close()


def evaluate_multi_agent(config: Any, act: Callable, params: Any, module_ids: list[str], episodes: int, seed: int = 10_000,
                         mapping_fn: Optional[Callable] = None) -> list[float]:
    """Returns (summed over agents) of `episodes` full episodes of the config's multi-agent env (reset
    with seeds `seed`, `seed + 1`, ...). `act(params, {mid: {"obs": [A, ...]}}, key) -> {mid: out}` (a
    MultiRLModule's forward_inference or forward_exploration); each agent takes the action of the module
    `mapping_fn(agent_id, episode)` (default: the config's policy_mapping_fn, else default_policy) maps it to."""
    seed = seed_int("seed", seed)
    env = make_env(config.env, config.env_config)
    if not is_multi_agent_env(env):
        raise ValueError(f"evaluate_multi_agent needs a multi-agent env (with possible_agents); got {config.env!r}")
    agents = list(env.possible_agents)
    mapping_fn = mapping_fn or config.policy_mapping_fn or (lambda agent_id, episode, **kw: DEFAULT_MODULE_ID)
    to_env = {a: env_action_fn(config, agent_spaces(env, a)[1]) for a in agents}
    act = jax.jit(act)
    key = jax.random.key(seed)
    returns = []
    try:
        for ep in range(episodes):
            mapping = {a: mapping_fn(a, ep) for a in agents}
            unknown = sorted({str(m) for m in mapping.values() if m not in module_ids})
            if unknown:
                raise ValueError(f"The agent-to-module mapping names unknown ModuleID(s) {unknown}; modules are {module_ids}")
            obs, _ = env.reset(seed=seed + ep)
            last = np.stack([np.asarray(obs[a], np.float32) for a in agents])
            active = np.ones(len(agents), bool)
            total, t = 0.0, 0
            while active.any():
                out = jax.device_get(act(params, {mid: {Columns.OBS: last} for mid in module_ids},
                                         jax.random.fold_in(jax.random.fold_in(key, ep), t)))
                actions = {a: to_env[a](jax.tree_util.tree_map(lambda x: x[i], out[mapping[a]][Columns.ACTIONS]))
                           for i, a in enumerate(agents) if active[i]}
                obs, rew, term, trunc, _ = env.step(actions)
                for i, a in enumerate(agents):
                    if a in actions:
                        total += float(rew[a])
                        active[i] &= not (term[a] or trunc[a])
                        if a in obs:
                            last[i] = obs[a]
                if term.get("__all__") or trunc.get("__all__"):
                    break
                t += 1
            returns.append(total)
    finally:
        if hasattr(env, "close"):
            env.close()
    return returns
