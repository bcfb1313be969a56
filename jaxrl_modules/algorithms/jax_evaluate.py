"""Evaluation over gymnax envs in one `jax.jit`: `episodes` vmapped envs, each run to the end of its
first episode (a `lax.while_loop` that stops once every env is done), deterministic (forward_inference:
greedy / mean actions) or stochastic (forward_exploration: sampled actions), seeded."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from jaxrl_modules.columns import Columns
from jaxrl_modules.validation import seed_int

FINAL_EXPLORATION_STEP = 2**30  # `t` passed to an exploration forward with a schedule (DQN's epsilon): its last value


def takes_timestep(module: Any) -> bool:
    """Whether the module's exploration reads the lifetime env-step count `t` (DQN's epsilon schedule)."""
    fn = getattr(type(module), "_forward_exploration", None)
    try:
        return fn is not None and "t" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def exploration_kwargs(module: Any) -> dict:
    """Keyword arguments of a stochastic evaluation's forward_exploration: `t` at the end of the
    schedule for modules whose exploration depends on the lifetime step (DQN's epsilon-greedy), so
    a stochastic evaluation samples as the trained policy does rather than at step 0."""
    return {"t": FINAL_EXPLORATION_STEP} if takes_timestep(module) else {}


def make_policy(module: Any, stochastic: bool = False) -> Callable:
    """`policy(params, obs [B, ...], state, key) -> (actions [B, ...], state)`, pure: forward_inference
    (deterministic) or forward_exploration (`stochastic`); `state` is the recurrent state of a stateful
    module (`[B, ...]`) and None otherwise."""
    fwd = module.phase_fn("exploration" if stochastic else "inference")
    kwargs = exploration_kwargs(module) if stochastic else {}

    def policy(params: Any, obs: Any, state: Any, key: jax.Array) -> tuple[Any, Any]:
        if state is None:
            return fwd(params, {Columns.OBS: obs}, key, **kwargs)[Columns.ACTIONS], None
        out = fwd(params, {Columns.OBS: jax.tree_util.tree_map(lambda x: x[:, None], obs), Columns.STATE_IN: state},
                  key, **kwargs)
        return jax.tree_util.tree_map(lambda x: x[:, 0], out[Columns.ACTIONS]), out[Columns.STATE_OUT]

    return policy


def run_episodes(env: Any, env_params: Any, policy: Callable, params: Any, rng: jax.Array, episodes: int, *,
                 obs_fn: Optional[Callable] = None, to_env: Optional[Callable] = None, initial_state: Any = None,
                 max_steps: Optional[int] = None) -> dict:
    """Runs `episodes` copies of the gymnax `env` (vmapped, reset with keys split from `rng`) until each
    has finished its first episode, or for `max_steps` steps (default: the env's
    `max_steps_in_episode`, else 10000). Pure and jittable (`env`, `policy`, `episodes`, `obs_fn`,
    `to_env`, `max_steps` static).

    `policy(params, obs, state, key) -> (actions, state)` as `make_policy` builds; `obs_fn` maps env
    observations to the module's (a connector); `to_env` module actions to the env's (unsquash/clip);
    `initial_state` a stateful module's initial state without batch axis.

    Returns `{"returns": [E], "lengths": [E], "finished": [E] bool}`: each env's first-episode return
    and length (what it had gathered at `max_steps` where `finished` is False)."""
    obs_fn = obs_fn or (lambda x: x)
    to_env = to_env or (lambda a: a)
    if max_steps is None:
        max_steps = int(getattr(env_params, "max_steps_in_episode", 10_000))
    k_reset, k_run = jax.random.split(rng)
    obs, env_state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, episodes), env_params)
    state = None
    if initial_state:
        state = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (episodes,) + jnp.shape(x)), initial_state)
    zeros = jnp.zeros(episodes, jnp.float32)
    carry = (obs, env_state, state, zeros, jnp.zeros(episodes, jnp.int32), jnp.zeros(episodes, bool), k_run,
             jnp.zeros((), jnp.int32))

    def cond(carry: tuple) -> jax.Array:
        done, t = carry[5], carry[7]
        return jnp.logical_and(~jnp.all(done), t < max_steps)

    def body(carry: tuple) -> tuple:
        obs, env_state, state, returns, lengths, done, key, t = carry
        key, k_act, k_env = jax.random.split(key, 3)
        actions, state = policy(params, obs_fn(obs), state, k_act)
        new_obs, new_env_state, reward, term, trunc, _ = jax.vmap(env.step, (0, 0, 0, None))(
            jax.random.split(k_env, episodes), env_state, to_env(actions), env_params)
        same = lambda new, old: jnp.asarray(new).astype(jnp.asarray(old).dtype)  # noqa: E731  (a fixed loop carry)
        obs, env_state = jax.tree_util.tree_map(same, (new_obs, new_env_state), (obs, env_state))
        live = ~done
        returns = returns + jnp.where(live, reward, 0.0).astype(jnp.float32)
        lengths = lengths + live.astype(jnp.int32)
        return obs, env_state, state, returns, lengths, done | term | trunc, key, t + 1

    carry = jax.lax.while_loop(cond, body, carry)
    return {"returns": carry[3], "lengths": carry[4], "finished": carry[5]}


def evaluate_gymnax(env: Any, env_params: Any, module: Any, params: Any, episodes: int, *, seed: int = 10_000,
                    stochastic: bool = False, obs_fn: Optional[Callable] = None, to_env: Optional[Callable] = None,
                    max_steps: Optional[int] = None, cache: Optional[dict] = None) -> list[float]:
    """The returns of `episodes` complete episodes of `module` (jitted `run_episodes`); a ValueError
    when an episode has not ended within `max_steps` steps. Pass the same `cache` dict on every call
    (an algorithm keeps one) so the jitted rollout is built and compiled once per
    `(episodes, stochastic, max_steps)`, not on every evaluation."""
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1; got {episodes!r}")
    seed = seed_int("seed", seed)
    cache = {} if cache is None else cache
    key = (episodes, bool(stochastic), max_steps, id(env), id(env_params))  # the env objects the algorithm holds
    if key not in cache:
        policy = make_policy(module, stochastic)
        initial = module.get_initial_state() if module.is_stateful() else None

        def run(p: Any, rng: jax.Array) -> dict:
            return run_episodes(env, env_params, policy, p, rng, episodes, obs_fn=obs_fn, to_env=to_env,
                                initial_state=initial, max_steps=max_steps)

        cache[key] = jax.jit(run)
    out = jax.device_get(cache[key](params, jax.random.key(seed)))
    if not out["finished"].all():
        raise ValueError(f"{int((~out['finished']).sum())} of {episodes} evaluation episodes did not end within "
                         f"{int(out['lengths'].max())} steps (max_steps); expected episodes that end")
    return [float(r) for r in out["returns"]]
