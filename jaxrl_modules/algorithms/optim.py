"""The optax optimizer every learner builds: optional gradient clipping, then Adam; and the
learning-rate schedule `lr_schedule="linear"`."""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax


def clip_by_norm(max_norm: float) -> optax.GradientTransformation:
    """RLlib's `grad_clip_by="norm"`: each gradient leaf clipped to L2 norm `max_norm` on its own."""

    def update(updates: Any, state: Any, params: Any = None) -> tuple:
        def clip(g: jax.Array) -> jax.Array:
            norm = jnp.sqrt(jnp.sum(jnp.square(g)))
            return g * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))

        return jax.tree_util.tree_map(clip, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def adam_with_clip(lr: Any, grad_clip: Optional[float], eps: float = 1e-8,
                   clip_by: str = "global_norm") -> optax.GradientTransformation:
    """Clipping by `clip_by` (RLlib's grad_clip_by: "global_norm", "norm" per leaf, or "value"
    elementwise) when `grad_clip` is set, chained with `adam(lr, eps)`; lr may be a schedule."""
    clips = {"global_norm": optax.clip_by_global_norm, "norm": clip_by_norm, "value": optax.clip}
    if clip_by not in clips:
        raise ValueError(f"grad_clip_by must be one of {list(clips)}; got {clip_by!r}")
    clip = [clips[clip_by](grad_clip)] if grad_clip is not None else []
    return optax.chain(*clip, optax.adam(lr, eps=eps))


def linear_lr_schedule(lr: float, total_iterations: int, updates_per_iteration: int) -> optax.Schedule:
    """PureJaxRL's annealing: iteration `i` (0-based, `updates_per_iteration` optimizer updates
    each) uses `lr * (1 - i / total_iterations)`, so the first uses `lr` and the last
    `lr / total_iterations`; later iterations keep that last value, so the rate never reaches 0."""
    if total_iterations is None:
        raise ValueError("lr_schedule='linear' needs the total number of training iterations; got total_iterations=None. "
                         "Set training(total_iterations=N) (build_train_fn(num_iterations) and the command line's "
                         "--iterations set it)")
    total, per_iter = int(total_iterations), max(1, int(updates_per_iteration))

    def schedule(count: jax.Array) -> jax.Array:
        iteration = jnp.minimum(count // per_iter, total - 1)
        return lr * (1.0 - iteration / total)

    return schedule


def learning_rate(config: Any, updates_per_iteration: int) -> Any:
    """`config.lr`, or the schedule `config.lr_schedule` names (None or "linear")."""
    if config.lr_schedule is None:
        return config.lr
    if config.lr_schedule == "linear":
        return linear_lr_schedule(config.lr, config.total_iterations, updates_per_iteration)
    raise ValueError(f"lr_schedule must be None or 'linear'; got {config.lr_schedule!r}")


def optimizer_for(config: Any, updates_per_iteration: int = 1) -> optax.GradientTransformation:
    """The optimizer a learner builds from `lr`, `lr_schedule`, `grad_clip`, `grad_clip_by` and `adam_eps`."""
    return adam_with_clip(learning_rate(config, updates_per_iteration), config.grad_clip, config.adam_eps,
                          config.grad_clip_by)


GRAD_NORM = "gradients_default_optimizer_global_norm"  # RLlib's learner metric names
LEARNING_RATE = "default_optimizer_learning_rate"


def lr_at(lr: Any, opt_state: Any) -> jax.Array:
    """The learning rate the next update of `opt_state` applies: `lr` itself, or the schedule at the
    optimizer's update count (the last `count` in the optax state: the schedule's own when there is one)."""
    if not callable(lr):
        return jnp.asarray(lr, jnp.float32)
    counts = optax.tree_utils.tree_get_all_with_path(opt_state, "count")
    return jnp.asarray(lr(counts[-1][1]), jnp.float32)


def optimizer_metrics(grads: Any, opt_state: Any, lr: Any, module_ids: Optional[list] = None) -> dict:
    """The grad norm and the learning rate of one update (before it is applied), for a single module,
    or per ModuleID of a multi-module's `{module_id: grads}` when `module_ids` is given."""
    rate = lr_at(lr, opt_state)
    if module_ids is None:
        return {GRAD_NORM: optax.global_norm(grads), LEARNING_RATE: rate}
    return {mid: {GRAD_NORM: optax.global_norm(grads[mid]), LEARNING_RATE: rate} for mid in module_ids}
