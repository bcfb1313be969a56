"""A uniform replay buffer of pytrees as pure functions, usable inside `jax.jit` and `lax.scan`.

State: `{"data": pytree of [capacity, ...] arrays, "pos": int, "size": int}`; `add` writes a
batch of transitions at the ring position, `sample` draws uniformly from the filled part.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


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


def add(state: ReplayBufferState, batch: Any) -> ReplayBufferState:
    """Writes a batch of transitions (leaves `[n, ...]`), overwriting the oldest when full."""
    capacity = jax.tree_util.tree_leaves(state.data)[0].shape[0]
    n = jax.tree_util.tree_leaves(batch)[0].shape[0]
    idx = (state.pos + jnp.arange(n)) % capacity
    data = jax.tree_util.tree_map(lambda d, b: d.at[idx].set(b), state.data, batch)
    return ReplayBufferState(data, (state.pos + n) % capacity, jnp.minimum(state.size + n, capacity))


def sample(state: ReplayBufferState, rng: jax.Array, batch_size: int) -> Any:
    """`batch_size` transitions drawn uniformly (with replacement) from the filled part."""
    idx = jax.random.randint(rng, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree_util.tree_map(lambda d: d[idx], state.data)
