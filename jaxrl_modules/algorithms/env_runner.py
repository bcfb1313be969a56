"""Host-loop sampling over a gymnasium vector env with a jitted forward_exploration."""

from __future__ import annotations

import functools
import os
from collections import deque
from typing import Any, Callable, Optional

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.algorithms.action_transform import env_action_fn
from jaxrl_modules.algorithms.jax_evaluate import exploration_kwargs, takes_timestep
from jaxrl_modules.algorithms.nonfinite import check_rows
from jaxrl_modules.envs.registry import make_env
from jaxrl_modules.columns import Columns
from jaxrl_modules.validation import seed_int


class EpisodeReturns:
    """`episode_return_mean` as every loop reports it: the mean return of the episodes that ended
    during an iteration, carried forward from the last iteration in which one ended when none did
    (NaN before the first); `num_episodes` is how many ended in the iteration (0: the mean is carried)."""

    def __init__(self) -> None:
        self.last = float("nan")

    def update(self, returns: Any) -> dict:
        """`{"episode_return_mean", "num_episodes"}` for an iteration whose ended episodes had `returns`."""
        returns = [float(r) for r in returns]
        return self.update_sum(sum(returns), len(returns))

    def update_sum(self, total: float, count: int) -> dict:
        """As `update`, from the sum and count of the returns (what the jitted loops compute)."""
        count = int(count)
        if count > 0:
            self.last = float(total) / count
        return {"episode_return_mean": self.last, "num_episodes": count}


def build_connector(config: Any, env: Any, observation_space: gym.Space, action_space: gym.Space) -> Any:
    """The env-to-module connector (or None), bound to the env's spaces."""
    if config.env_to_module_connector is None:
        return None
    connector = config.env_to_module_connector(env)
    if getattr(connector, "input_observation_space", None) is None and hasattr(connector, "set_spaces"):
        connector.set_spaces(observation_space, action_space)
    return connector


def make_act_fn(module: Any, connector: Any, phase: str = "exploration") -> Callable:
    """`act(params, obs, rng, t)` jitted once: connector, forward pass, per-step key fold-in; `t` is the
    lifetime env-step count (passed on to an exploration that reads it, `takes_timestep`).

    For a stateful module it is `act(params, obs, rng, t, state)`: the (connected) obs `[N, ...]`
    is one timestep of a `[N, 1, ...]` sequence from `state` (`[N, ...]`, as the jit path's
    `JaxEnvRunner.rollout` acts); the outputs lose the time axis and STATE_OUT is the next state."""
    fwd = module.phase_fn(phase)
    with_t = phase == "exploration" and takes_timestep(module)

    def forward(params, batch, rng, t):
        return fwd(params, batch, jax.random.fold_in(rng, t), **({"t": t} if with_t else {}))

    if module.is_stateful():
        def act_stateful(params, obs, rng, t, state):
            obs = connector(obs) if connector is not None else obs
            out = forward(params, {Columns.OBS: jax.tree_util.tree_map(lambda x: x[:, None], obs), Columns.STATE_IN: state},
                          rng, t)
            state_out = out.pop(Columns.STATE_OUT)
            out = jax.tree_util.tree_map(lambda x: x[:, 0], out)
            out[Columns.OBS], out[Columns.STATE_OUT] = obs, state_out
            return out

        return jax.jit(act_stateful)

    def act(params, obs, rng, t):
        obs = connector(obs) if connector is not None else obs
        out = forward(params, {Columns.OBS: obs}, rng, t)
        out[Columns.OBS] = obs
        return out

    return jax.jit(act)


def num_env_runners(config: Any) -> int:
    """`config.num_env_runners` (0 when never set)."""
    return int(getattr(config, "num_env_runners", 0) or 0)


def total_envs(config: Any) -> int:
    """Envs a host loop steps: `max(1, num_env_runners) * num_envs_per_env_runner` (RLlib's sample volume:
    every env runner steps `num_envs_per_env_runner` envs; 0 runners means the local one samples)."""
    return max(1, num_env_runners(config)) * int(config.num_envs_per_env_runner)


def reject_env_runners(config: Any, loop: str) -> None:
    """A ValueError, at build time, where `num_env_runners > 0` cannot take effect (`loop` names the loop)."""
    if num_env_runners(config) > 0:
        raise ValueError(
            f"num_env_runners={config.num_env_runners} has no effect in {loop}: expected num_env_runners=0 there "
            f"(worker processes step gymnasium envs of the single-agent host loops only); use "
            f"env_runners(num_envs_per_env_runner=N) to step more envs in parallel")


def reject_stateful(module: Any, algorithm: str) -> None:
    """A ValueError, at build time, for an algorithm that trains stateless modules only (DQN, SAC)."""
    model_config = module.config() if callable(getattr(module, "config", None)) else None
    if module.is_stateful() or getattr(model_config, "use_lstm", False):
        raise ValueError(f"model_config use_lstm: {algorithm} trains stateless modules only; expected use_lstm=False "
                         f"(and a module whose get_initial_state() is {{}}), got a recurrent {type(module).__name__} "
                         "(recurrent training is PPO's)")


# "spawn": JAX is multithreaded, and forking a process that runs JAX's threads can deadlock the child.
WORKER_CONTEXT = "spawn"


def make_vector_env(config: Any) -> gym.vector.VectorEnv:
    """`total_envs(config)` copies of the config's env, auto-resetting in the same step: in this process
    (`SyncVectorEnv`) when `num_env_runners == 0`, else each env in its own worker process (gymnasium's
    `AsyncVectorEnv`, "spawn" context; `num_env_runners * num_envs_per_env_runner` processes). The
    workers end with the vector env's `close()` (and, as daemons, with this process)."""
    make = functools.partial(make_env, config.env, config.env_config)
    n = total_envs(config)
    if num_env_runners(config) == 0:
        return gym.vector.SyncVectorEnv([make] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    from jaxrl_modules.envs.registry import _ENV_CREATORS

    from jaxrl_modules.envs.worker import make_worker_env

    probe = make()  # a bad env fails here, in this process, before any worker starts
    spaces = (probe.observation_space, probe.action_space)
    probe.close()
    env = config.env
    if isinstance(env, str) and env in _ENV_CREATORS:  # a spawned worker starts with an empty registry: send the creator
        env = _ENV_CREATORS[env]
    # envs/worker.py imports no JAX, so a worker starts in about a second (the env's own imports aside); an env
    # the worker cannot build raises a ValueError saying why at the first reset
    worker = functools.partial(make_worker_env, env, dict(config.env_config), *spaces)
    return gym.vector.AsyncVectorEnv([worker] * n, context=WORKER_CONTEXT, daemon=True,
                                     autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def true_next_obs(next_obs: Any, info: dict) -> Any:
    """`next_obs` (an array, or a tuple/dict of arrays for Tuple/Dict spaces) with the final
    observation of every env whose episode just ended (same-step autoreset returns the reset
    observation in `next_obs` and the final one in `info`)."""
    out = jax.tree_util.tree_map(lambda x: np.array(x, copy=True), next_obs)
    if "_final_obs" in info:
        for i in np.flatnonzero(info["_final_obs"]):
            for leaf, value in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(info["final_obs"][i])):
                leaf[i] = value
    return out


class GymEnvRunner:
    """`total_envs(config)` copies of a gymnasium env (same-step autoreset; in worker processes when
    `num_env_runners > 0`, see `make_vector_env`).

    For a stateful module (`set_initial_state`), the runner carries each env's recurrent state between
    steps and between `sample` calls, and puts an env back at the module's initial state when its
    episode ends, as the jit path's `JaxEnvRunner.rollout` does."""

    def __init__(self, config: Any):
        self.config = config
        probe = make_env(config.env, config.env_config)
        if hasattr(probe, "possible_agents") and not hasattr(probe, "spec"):
            probe.close()
            raise ValueError(f"{config.env!r} is a multi-agent env; configure multi_agent(...) or use a single-agent env")
        try:
            self.env_observation_space = probe.observation_space
            self.action_space = probe.action_space
            self.to_env = env_action_fn(config, probe.action_space)  # module actions -> env actions (unsquash/clip)
            self.connector = build_connector(config, probe, probe.observation_space, probe.action_space)
            self.observation_space = self.connector.observation_space if self.connector else probe.observation_space
        finally:
            probe.close()
        self.num_envs = total_envs(config)
        self.envs = make_vector_env(config)
        try:
            # a multi-process run's processes step different envs: process i's are seeded after process i-1's
            self.obs, _ = self.envs.reset(seed=config.seed + jax.process_index() * self.num_envs)
        except BaseException:
            self.envs.close()
            raise
        self.episode_returns = np.zeros(self.num_envs)
        self.completed: deque = deque(maxlen=100)  # the last 100 returns (a history; not episode_return_mean)
        self.num_env_steps = 0
        self.initial_state: Any = None  # a stateful module's initial state (no batch axis)
        self.recurrent_state: Any = None  # [N, ...] per env, carried across steps and sample() calls

    def set_initial_state(self, initial_state: Any) -> None:
        """Acts for a stateful module from now on: every env starts from `initial_state` (a module's
        `get_initial_state()`, no batch axis); `{}`/None: stateless."""
        if not initial_state:
            self.initial_state = self.recurrent_state = None
            return
        self.initial_state = jax.tree_util.tree_map(np.asarray, initial_state)
        self.recurrent_state = jax.tree_util.tree_map(
            lambda x: np.broadcast_to(x, (self.num_envs,) + x.shape).copy(), self.initial_state)

    def sample(self, act: Callable, params: Any, rng: jax.Array, steps: int, first_step: int = 0) -> tuple[dict, Any, list]:
        """Returns `(traj, last_obs, returns)`: traj columns `[T, N, ...]` incl. TRUNCATEDS and
        "final_obs" (the env's observation an episode ended in, the next observation otherwise; not
        yet connected: the loop applies the connector inside its jitted learn step), and the episode
        returns finished during this call. "bootstrap" marks truncations (not terminations), whose
        value is bootstrapped from "final_obs". `act` gets each step's
        lifetime env-step count as `t`; `first_step` numbers the steps in error messages (a loop that
        samples one step at a time counts its steps across calls).

        Stateful modules (`act(params, obs, rng, t, state)`, see `make_act_fn`): STATE_IN holds the state
        each step acted from, "state_out" the state after it (before an ended episode's reset: the
        state a truncated episode's final observation is valued from)."""
        stateful = self.recurrent_state is not None
        keys = [Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS,
                Columns.REWARDS, Columns.TERMINATEDS, Columns.TRUNCATEDS, "final_obs", "bootstrap"]
        cols: dict = {k: [] for k in keys + ([Columns.STATE_IN, "state_out"] if stateful else [])}
        finished = []
        for i in range(steps):
            t, env_t = first_step + i, self.num_env_steps + i * self.num_envs
            check_rows({"env observation": self.obs}, step=t)
            if stateful:
                out = jax.device_get(act(params, self.obs, rng, env_t, self.recurrent_state))
            else:
                out = jax.device_get(act(params, self.obs, rng, env_t))
            if Columns.ACTION_DIST_INPUTS in out:  # a Q-network's exploration (DQN) has none
                check_rows({"action distribution inputs": out[Columns.ACTION_DIST_INPUTS]}, step=t, allow_neg_inf=True)
            check_rows({"actions": out[Columns.ACTIONS]}, step=t)  # float (Box) actions only
            next_obs, reward, term, trunc, info = self.envs.step(self.to_env(out[Columns.ACTIONS]))
            check_rows({"env reward": reward}, step=t)
            final = true_next_obs(next_obs, info)  # raw: the loop connects it with the jitted learn step
            for key in (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS):
                if key in out:
                    cols[key].append(out[key])
            cols[Columns.REWARDS].append(reward.astype(np.float32))
            cols[Columns.TERMINATEDS].append(term)
            cols[Columns.TRUNCATEDS].append(trunc & ~term)
            cols["bootstrap"].append(trunc & ~term)
            cols["final_obs"].append(final)
            done = term | trunc
            if stateful:
                cols[Columns.STATE_IN].append(self.recurrent_state)
                cols["state_out"].append(out[Columns.STATE_OUT])
                self.recurrent_state = jax.tree_util.tree_map(  # a new episode starts from the initial state
                    lambda x, init: np.where(done.reshape((-1,) + (1,) * (x.ndim - 1)), init, x),
                    out[Columns.STATE_OUT], self.initial_state)
            self.episode_returns += reward
            for i in np.flatnonzero(done):
                finished.append(float(self.episode_returns[i]))
                self.episode_returns[i] = 0.0
            self.obs = next_obs
        check_rows({"env observation": self.obs}, step=first_step + steps)  # the last obs is bootstrapped from
        self.num_env_steps += steps * self.num_envs
        self.completed.extend(finished)
        trees = ("final_obs", Columns.STATE_IN, "state_out")  # pytrees per step (a Tuple/Dict obs, an LSTM state)
        traj = {k: np.stack(v) for k, v in cols.items() if k not in trees and v}
        for k in trees:
            if cols.get(k):
                traj[k] = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *cols[k])
        return traj, self.obs, finished

    def close(self) -> None:
        self.envs.close()


def make_render_env(config: Any) -> Any:
    """The config's env rendering `rgb_array` frames: gymnasium ids are made with
    `render_mode="rgb_array"`; other envs (registered creators, classes) must already render so."""
    from jaxrl_modules.envs.registry import _ENV_CREATORS

    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # rgb_array rendering with pygame needs no sound card
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # nor a display
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if isinstance(config.env, str) and config.env not in _ENV_CREATORS:
        try:
            return make_env(config.env, {**config.env_config, "render_mode": "rgb_array"})
        except gym.error.DependencyNotInstalled as err:
            raise ValueError(f"Cannot render {config.env!r}: a rendering dependency is not installed ({err})") from None
    env = make_env(config.env, config.env_config)
    if getattr(env, "render_mode", None) != "rgb_array":
        env.close()
        raise ValueError(f"Cannot record {config.env!r}: expected an env that renders rgb_array frames; its render_mode is "
                         f"{getattr(env, 'render_mode', None)!r}")
    return env


def evaluate_policy(config: Any, module: Any, params: Any, episodes: int, seed: int = 10_000, *,
                    stochastic: bool = False, frames: Optional[list] = None) -> list[float]:
    """Returns of `episodes` full episodes on a fresh env (reset with seeds `seed`, `seed + 1`, ...):
    deterministic (forward_inference) or, `stochastic`, sampled (forward_exploration, keys from `seed`).
    With a `frames` list, the env renders `rgb_array` frames and the first episode's are appended to it."""
    seed = seed_int("seed", seed)
    env = make_render_env(config) if frames is not None else make_env(config.env, config.env_config)
    connector = build_connector(config, env, env.observation_space, env.action_space)
    fwd = module.phase_fn("exploration" if stochastic else "inference")
    kwargs = exploration_kwargs(module) if stochastic else {}

    def act(p: Any, obs: Any, state: Any, key: jax.Array) -> Any:
        """`(actions [1, ...], next state)`; a stateful module steps a `[1, 1, ...]` sequence from `state`."""
        obs = connector(obs) if connector is not None else obs
        if state is None:
            return fwd(p, {Columns.OBS: obs}, key, **kwargs)[Columns.ACTIONS], None
        out = fwd(p, {Columns.OBS: jax.tree_util.tree_map(lambda x: x[:, None], obs), Columns.STATE_IN: state}, key,
                  **kwargs)
        return jax.tree_util.tree_map(lambda a: a[:, 0], out[Columns.ACTIONS]), out[Columns.STATE_OUT]

    act = jax.jit(act)
    to_env = env_action_fn(config, env.action_space)
    key = jax.random.key(seed)
    # a stateful module starts every episode from its initial state (batch axis of 1) and carries it per step
    initial = module.get_initial_state() if module.is_stateful() else None
    initial = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], initial) if initial else None
    returns = []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            state = initial
            record = frames is not None and ep == 0
            if record:
                frames.append(np.asarray(env.render()))
            done, total, t = False, 0.0, 0
            while not done:
                batch = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], obs)
                out, state = act(params, batch, state, jax.random.fold_in(jax.random.fold_in(key, ep), t))
                action = jax.tree_util.tree_map(lambda a: np.asarray(a)[0], out)
                obs, reward, term, trunc, _ = env.step(to_env(action))
                if record:
                    frames.append(np.asarray(env.render()))
                total += float(reward)
                done, t = term or trunc, t + 1
            returns.append(total)
    finally:
        env.close()
    return returns
