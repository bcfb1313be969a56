"""Shuffled minibatch epochs as one `lax.scan`, shared by the on-policy and offline learners."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax


def minibatch_epochs(loss_fn: Callable, optimizer: optax.GradientTransformation, params: Any, opt_state: Any,
                     batch: Any, rng: jax.Array, num_epochs: int, num_minibatches: int, shuffle: bool = True,
                     step_metrics: Optional[Callable] = None, shard: Optional[Callable] = None,
                     multiple: int = 1) -> tuple:
    """`num_epochs` passes over `batch` (leaves `[B, ...]`) in `num_minibatches` gradient steps each.

    `loss_fn(params, minibatch) -> (loss, metrics)`. Returns `(params, opt_state, metrics)`, the
    metrics of the last minibatch. A remainder of `B % num_minibatches` rows is skipped per epoch.
    `step_metrics(metrics, grads, opt_state) -> metrics` adds per-step metrics (grad norm, learning
    rate) from the gradients and the optimizer state before the update. `shard(tree)` places each
    minibatch (data-parallel learners: split over the devices, `DataParallel.shard_rows`); each
    minibatch's rows are rounded down to a `multiple` (the learners) so that they split evenly.
    """
    size = jax.tree_util.tree_leaves(batch)[0].shape[0]
    rows = max(multiple, (size // num_minibatches) // multiple * multiple)
    num_minibatches = max(1, min(num_minibatches, size // rows))
    usable = num_minibatches * rows

    def step(carry, mb):
        params, opt_state = carry
        if shard is not None:
            mb = shard(mb)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, mb)
        if step_metrics is not None:
            metrics = step_metrics(metrics, grads, opt_state)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), metrics

    def epoch(carry, key):
        perm = jax.random.permutation(key, size) if shuffle else jnp.arange(size)
        mbs = jax.tree_util.tree_map(lambda x: x[perm[:usable]].reshape((num_minibatches, -1) + x.shape[1:]), batch)
        return jax.lax.scan(step, carry, mbs)

    (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), jax.random.split(rng, num_epochs))
    return params, opt_state, jax.tree_util.tree_map(lambda x: x[-1, -1], metrics)
