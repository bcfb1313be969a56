"""A uniform replay buffer of pytrees as pure functions, usable inside `jax.jit` and `lax.scan`.

State: `{"data": pytree of [capacity, ...] arrays, "pos": int, "size": int}`; `add` writes a
batch of transitions at the ring position, `sample` draws uniformly from the filled part.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp


# RLlib's uniform buffers; prioritized ones are not implemented and are refused, never replaced.
UNIFORM_BUFFER_TYPES = ("ReplayBuffer", "EpisodeReplayBuffer", "MultiAgentEpisodeReplayBuffer")
REPLAY_BUFFER_KEYS = ("type", "capacity")


def parse_replay_buffer_config(config: Any, train_batch_size: Optional[int]) -> dict:
    """Checks a `replay_buffer_config` dict: keys in REPLAY_BUFFER_KEYS (a typo gets a "did you
    mean"), a uniform buffer type, an int capacity >= 1 and (when known) >= `train_batch_size`.
    Returns `{"type": ..., "capacity": ...}`."""
    from jaxrl_modules import validation as v

    if not isinstance(config, dict):
        v.fail("replay_buffer_config", "a dict such as {'type': 'ReplayBuffer', 'capacity': 50000}", config, TypeError)
    for key in config:
        if key not in REPLAY_BUFFER_KEYS:
            close = difflib.get_close_matches(str(key), REPLAY_BUFFER_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            prioritized = " (prioritized replay is not supported)" if key in ("alpha", "beta") else ""
            raise ValueError(f"Unknown replay_buffer_config key {key!r}{prioritized}.{hint} "
                             f"Known keys: {list(REPLAY_BUFFER_KEYS)}")
    kind = config.get("type", "ReplayBuffer")
    if not isinstance(kind, str):
        v.fail("replay_buffer_config['type']", f"one of {list(UNIFORM_BUFFER_TYPES)}", kind, TypeError)
    if kind not in UNIFORM_BUFFER_TYPES:
        note = " Prioritized replay is not implemented; use a uniform buffer." if "Prioritized" in kind else ""
        raise ValueError(f"replay_buffer_config['type'] must be one of {list(UNIFORM_BUFFER_TYPES)} (uniform replay); "
                         f"got {kind!r}.{note}")
    capacity = v.positive_int("replay_buffer_config['capacity']", config.get("capacity", 50000))
    if train_batch_size is not None and capacity < train_batch_size:
        v.fail("replay_buffer_config['capacity']", f"an int >= the train batch size ({train_batch_size})", capacity)
    return {"type": kind, "capacity": capacity}


class ReplayBufferState(NamedTuple):
    data: Any
    pos: jax.Array
    size: jax.Array


def init_buffer(example: Any, capacity: int) -> ReplayBufferState:
    """An empty buffer for transitions shaped like `example` (one transition, no batch axis)."""
    if capacity < 1:
        raise ValueError(f"replay capacity must be positive; got {capacity}")
    data = jax.tree_util.tree_map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayBufferState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(state: ReplayBufferState, batch: Any, mask: Any = None) -> ReplayBufferState:
    """Writes a batch of transitions (leaves `[n, ...]`), overwriting the oldest when full;
    with a `[n]` bool `mask`, only the rows where it is true (fixed shapes, so jittable)."""
    capacity = jax.tree_util.tree_leaves(state.data)[0].shape[0]
    n = jax.tree_util.tree_leaves(batch)[0].shape[0]
    if mask is None:
        mask = jnp.ones((n,), bool)
    offsets = jnp.cumsum(mask) - 1
    idx = jnp.where(mask, (state.pos + offsets) % capacity, capacity)  # out of range: dropped
    data = jax.tree_util.tree_map(lambda d, b: d.at[idx].set(b, mode="drop"), state.data, batch)
    count = mask.sum().astype(jnp.int32)
    return ReplayBufferState(data, (state.pos + count) % capacity, jnp.minimum(state.size + count, capacity))


def sample(state: ReplayBufferState, rng: jax.Array, batch_size: int) -> Any:
    """`batch_size` transitions drawn uniformly (with replacement) from the filled part."""
    idx = jax.random.randint(rng, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree_util.tree_map(lambda d: d[idx], state.data)


class NStepWindow(NamedTuple):
    """The last `n` one-step transitions of every env (leaves `[n, N, ...]`) and how many are filled."""

    data: Any
    count: jax.Array


def init_nstep(example_step: Any, n: int, num_envs: int) -> NStepWindow:
    data = jax.tree_util.tree_map(lambda x: jnp.zeros((n, num_envs) + jnp.shape(x), jnp.asarray(x).dtype), example_step)
    return NStepWindow(data, jnp.zeros((), jnp.int32))


def nstep_push(window: NStepWindow, step: dict, gamma: float, obs_key: str, action_key: str, reward_key: str,
               done_key: str, next_obs_key: str) -> tuple[NStepWindow, dict, jax.Array]:
    """Pushes one step of all envs; returns the n-step transition that starts `n` steps back
    (return summed until the episode ends, the observation it ends in, and its bootstrap
    discount `gamma ** steps`) and whether it is valid (the window was full)."""
    data = jax.tree_util.tree_map(lambda w, x: jnp.concatenate([w[1:], x[None]], axis=0), window.data, step)
    n = jax.tree_util.tree_leaves(data)[0].shape[0]
    dones = data[done_key].astype(jnp.float32)  # [n, N]
    alive = jnp.cumprod(jnp.concatenate([jnp.ones_like(dones[:1]), 1.0 - dones[:-1]], axis=0), axis=0)
    discounts = gamma ** jnp.arange(n, dtype=jnp.float32)[:, None]
    ret = (data[reward_key] * discounts * alive).sum(axis=0)
    last = jnp.where(dones.any(axis=0), jnp.argmax(dones, axis=0), n - 1)  # index of the last included step
    take = lambda x: jnp.take_along_axis(x, last.reshape((1, -1) + (1,) * (x.ndim - 2)), axis=0)[0]  # noqa: E731
    out = {obs_key: data[obs_key][0], action_key: data[action_key][0], reward_key: ret,
           next_obs_key: take(data[next_obs_key]), done_key: take(data[done_key]),
           "discounts": gamma ** (last.astype(jnp.float32) + 1.0)}
    count = jnp.minimum(window.count + 1, n)
    return NStepWindow(data, count), out, jnp.broadcast_to(count >= n, last.shape)
