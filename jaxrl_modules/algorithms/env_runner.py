"""Host-loop sampling over a gymnasium vector env with a jitted forward_exploration."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.algorithms.action_transform import env_action_fn
from jaxrl_modules.algorithms.nonfinite import check_rows
from jaxrl_modules.algorithms.registry import make_env
from jaxrl_modules.columns import Columns


def build_connector(config: Any, env: Any, observation_space: gym.Space, action_space: gym.Space) -> Any:
    """The env-to-module connector (or None), bound to the env's spaces."""
    if config.env_to_module_connector is None:
        return None
    connector = config.env_to_module_connector(env)
    if getattr(connector, "input_observation_space", None) is None and hasattr(connector, "set_spaces"):
        connector.set_spaces(observation_space, action_space)
    return connector


def make_act_fn(module: Any, connector: Any, phase: str = "exploration") -> Callable:
    """`act(params, obs, rng, t)` jitted once: connector, forward pass, per-step key fold-in."""
    fwd = module.phase_fn(phase)

    def act(params, obs, rng, t):
        obs = connector(obs) if connector is not None else obs
        out = fwd(params, {Columns.OBS: obs}, jax.random.fold_in(rng, t))
        out[Columns.OBS] = obs
        return out

    return jax.jit(act)


def make_vector_env(config: Any) -> gym.vector.SyncVectorEnv:
    """`num_envs_per_env_runner` copies of the config's env, auto-resetting in the same step."""
    return gym.vector.SyncVectorEnv([lambda: make_env(config.env, config.env_config)] * config.num_envs_per_env_runner,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def true_next_obs(next_obs: np.ndarray, info: dict) -> np.ndarray:
    """`next_obs` with the final observation of every env whose episode just ended (same-step
    autoreset returns the reset observation in `next_obs` and the final one in `info`)."""
    out = np.array(next_obs, copy=True)
    if "_final_obs" in info:
        for i in np.flatnonzero(info["_final_obs"]):
            out[i] = info["final_obs"][i]
    return out


class GymEnvRunner:
    """`num_envs_per_env_runner` copies of a gymnasium env (same-step autoreset)."""

    def __init__(self, config: Any):
        self.config = config
        probe = make_env(config.env, config.env_config)
        if hasattr(probe, "possible_agents") and not hasattr(probe, "spec"):
            raise ValueError(f"{config.env!r} is a multi-agent env; configure multi_agent(...) or use a single-agent env")
        self.env_observation_space = probe.observation_space
        self.action_space = probe.action_space
        self.to_env = env_action_fn(config, probe.action_space)  # module actions -> env actions (unsquash/clip)
        self.connector = build_connector(config, probe, probe.observation_space, probe.action_space)
        self.observation_space = self.connector.observation_space if self.connector else probe.observation_space
        probe.close()
        self.envs = make_vector_env(config)
        self.obs, _ = self.envs.reset(seed=config.seed)
        self.episode_returns = np.zeros(config.num_envs_per_env_runner)
        self.completed: deque = deque(maxlen=100)
        self.num_env_steps = 0

    def sample(self, act: Callable, params: Any, rng: jax.Array, steps: int) -> tuple[dict, Any, list]:
        """Returns `(traj, last_obs, returns)`: traj columns `[T, N, ...]` incl. TRUNCATEDS and
        "final_obs" (the observation a truncated episode ended in), and the episode returns
        finished during this call. "bootstrap" marks truncations whose final observation is known
        (without a connector), so their value can be bootstrapped."""
        cols: dict = {k: [] for k in (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS,
                                      Columns.REWARDS, Columns.TERMINATEDS, Columns.TRUNCATEDS, "final_obs", "bootstrap")}
        finished = []
        for t in range(steps):
            check_rows({"env observation": self.obs}, step=t)
            out = jax.device_get(act(params, self.obs, rng, t))
            check_rows({"action distribution inputs": out[Columns.ACTION_DIST_INPUTS]}, step=t, allow_neg_inf=True)
            check_rows({"actions": out[Columns.ACTIONS]}, step=t)  # float (Box) actions only
            next_obs, reward, term, trunc, info = self.envs.step(self.to_env(out[Columns.ACTIONS]))
            check_rows({"env reward": reward}, step=t)
            final = true_next_obs(next_obs, info) if self.connector is None else None
            for key in (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS):
                cols[key].append(out[key])
            cols[Columns.REWARDS].append(reward.astype(np.float32))
            cols[Columns.TERMINATEDS].append(term)
            cols[Columns.TRUNCATEDS].append(trunc & ~term)
            cols["bootstrap"].append(trunc & ~term if final is not None else np.zeros_like(trunc))
            cols["final_obs"].append(final if final is not None else np.zeros_like(out[Columns.OBS]))
            self.episode_returns += reward
            for i in np.flatnonzero(term | trunc):
                finished.append(float(self.episode_returns[i]))
                self.episode_returns[i] = 0.0
            self.obs = next_obs
        check_rows({"env observation": self.obs}, step=steps)  # the last obs is bootstrapped from
        self.num_env_steps += steps * self.config.num_envs_per_env_runner
        self.completed.extend(finished)
        traj = {k: np.stack(v) for k, v in cols.items()}
        return traj, self.obs, finished

    def close(self) -> None:
        self.envs.close()


def evaluate_policy(config: Any, module: Any, params: Any, episodes: int, seed: int = 10_000) -> list[float]:
    """Deterministic (forward_inference) returns of `episodes` full episodes on a fresh env."""
    env = make_env(config.env, config.env_config)
    connector = build_connector(config, env, env.observation_space, env.action_space)
    act = make_act_fn(module, connector, "inference")
    to_env = env_action_fn(config, env.action_space)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            out = act(params, jnp.asarray(obs)[None], jax.random.key(0), 0)
            action = jax.tree_util.tree_map(lambda a: np.asarray(a)[0], out[Columns.ACTIONS])
            obs, reward, term, trunc, _ = env.step(to_env(action))
            total += float(reward)
            done = term or trunc
        returns.append(total)
    env.close()
    return returns
