"""Initializers that stay safe under `jax.vmap` on CPU.

`jax.nn.initializers.orthogonal` draws through a QR factorization. Vmapped (several seeds
initialised in one jit, as `jax.vmap(train)` or `MultiSeedAlgorithm` do), that is a batched
LAPACK call, which jaxlib's CPU kernel splits over XLA's intra-op thread pool and then waits
for on a pool thread. When every pool thread is such a waiter (two independent layers'
QRs on a 2-core machine), nobody runs the split work and the program never finishes: an
intermittent hang in `block_until_ready` with every XLA thread idle. The orthogonal
initializer here batches by mapping over the batch (`lax.map`): one unbatched QR at a time,
the same values, no wait inside the pool.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.nn.initializers import Initializer


def orthogonal(scale: Any = 1.0, column_axis: int = -1, dtype: Any = None) -> Initializer:
    """`jax.nn.initializers.orthogonal(scale, column_axis, dtype)`, with the same values,
    whose vmapped form runs its QRs one after another (see the module docstring)."""
    base = jax.nn.initializers.orthogonal(scale, column_axis, dtype)

    def init(key: jax.Array, shape: Any, dtype: Any = dtype, out_sharding: Any = None) -> jax.Array:
        @jax.custom_batching.custom_vmap
        def draw(k: jax.Array) -> jax.Array:
            return base(k, shape, dtype, out_sharding=out_sharding)

        @draw.def_vmap
        def _one_at_a_time(axis_size: int, in_batched: list, k: jax.Array) -> tuple:
            del axis_size, in_batched  # only the key is an input, so it is the batched one
            return jax.lax.map(draw, k), True

        return draw(key)

    return init
