"""Non-finite (NaN / inf) detection for the training loops, and the error they raise.

Every loop checks one *check tree* per iteration: a dict whose top-level keys label what is
checked, in the order they are reported:

    {"env observation": obs, "env reward": rewards, "metrics": learner_metrics, "params": params}

(absent parts are simply left out). `nonfinite_code(tree)` reduces it inside jit to one int32:
the index of the first leaf holding a NaN or inf (leaves in `jax.tree_util` order: top-level
labels as listed above are sorted by JAX, so the order is "env observation", "env reward",
"metrics", "params"; dict keys within each part are sorted), or -1 when everything is finite.
`quantity_names(tree)` gives the matching names: a metric by its key (`policy_loss`, or
`p0/policy_loss` for a multi-module learner), a param leaf as a path
(`params['pi']['Dense_0']['kernel']`), the env parts by their label.

Algorithms raise `NonFiniteError` (a `FloatingPointError`) from `train()` naming the
iteration and the first non-finite quantity, keeping their state from before that iteration.
The all-in-jit `build_train_fn` cannot raise; its metrics carry, per iteration,
"nonfinite_code" and the running "first_nonfinite_iteration" / "first_nonfinite_code" (see
`scan_with_first_nonfinite`), and `train.nonfinite_names[code]` names a code's quantity.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.algorithms.optim import GRAD_NORM, LEARNING_RATE

DERIVED_METRICS = (GRAD_NORM, LEARNING_RATE)  # reported only when no other quantity is non-finite

# What an algorithm is left holding after it raised (the loops restore it before raising).
KEPT_STATE = "the algorithm keeps its params, optimizer state and RNG from before this iteration (the last finite ones)"


class NonFiniteError(FloatingPointError):
    """Training met a NaN or inf. `quantity` names it (`policy_loss`, a param leaf path,
    `env reward`, `env observation`), `iteration` is the training iteration (1-based, as
    `result["training_iteration"]`), `detail` says where and which value."""

    def __init__(self, quantity: str, iteration: Optional[int] = None, detail: str = "", kept: str = KEPT_STATE):
        self.quantity, self.iteration, self.detail, self.kept = quantity, iteration, detail, kept
        where = f"training iteration {iteration}: " if iteration is not None else ""
        super().__init__(f"{where}non-finite {quantity}{': ' + detail if detail else ''}; training stopped, {kept}")

    def at_iteration(self, iteration: int, kept: Optional[str] = None) -> "NonFiniteError":
        return NonFiniteError(self.quantity, iteration, self.detail, self.kept if kept is None else kept)

    def __reduce__(self):
        return NonFiniteError, (self.quantity, self.iteration, self.detail, self.kept)


@contextmanager
def at_iteration(iteration: int, kept: Optional[str] = None) -> Iterator[None]:
    """Adds the training iteration to a `NonFiniteError` raised inside (e.g. by an env runner)."""
    try:
        yield
    except NonFiniteError as err:
        raise err.at_iteration(iteration, kept) from None


def _key(entry: Any) -> Any:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return entry


def quantity_names(tree: Any) -> tuple[str, ...]:
    """Names of the leaves of a check tree, in `jax.tree_util` leaf order (see the module doc)."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        head, rest = str(_key(path[0])) if path else "value", path[1:]
        if head == "params":
            names.append("params" + jax.tree_util.keystr(rest))
        elif head == "metrics":
            names.append("/".join(str(_key(k)) for k in rest) or head)
        else:
            names.append(head + jax.tree_util.keystr(rest))
    return tuple(names)


def _is_float(x: Any) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _derived(tree: Any) -> list[bool]:
    """Per leaf: whether it is a quantity derived from others (the grad norm, the learning rate), which
    is reported only when nothing else is non-finite: a NaN loss names the loss, not the grad norm."""
    return [bool(path) and _key(path[-1]) in DERIVED_METRICS for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def nonfinite_code(tree: Any) -> jax.Array:
    """Index (int32) of the first leaf of `tree` holding a NaN or inf (derived metrics last, see
    `_derived`); -1 when all are finite. Jittable: one `isfinite` reduction per floating leaf (on CPU
    about 2 us per call for a DQN-sized tree over the cost of touching it; flattening all leaves into
    one reduction was measured slower)."""
    leaves = jax.tree_util.tree_leaves(tree)
    flags = [~jnp.all(jnp.isfinite(x)) if _is_float(x) else jnp.zeros((), bool) for x in leaves]
    if not flags:
        return jnp.full((), -1, jnp.int32)
    flags = jnp.stack(flags)
    primary = flags & ~jnp.asarray(_derived(tree))
    first = jnp.where(primary.any(), jnp.argmax(primary), jnp.argmax(flags))
    return jnp.where(flags.any(), first, -1).astype(jnp.int32)


def describe(value: Any) -> str:
    """`value nan` for a scalar; for an array, how many values are non-finite and the first one with its index."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return f"value {arr.item()}"
    bad = ~np.isfinite(arr)
    first = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else None
    shown = f", first {arr[first].item()} at index {first}" if first is not None else ""
    return f"{int(bad.sum())} of {arr.size} values non-finite{shown}"


def first_nonfinite(tree: Any) -> tuple[bool, Optional[str]]:
    """`(found, name)`: whether any leaf of `tree` holds a NaN or inf, and the name of the
    first one (see `quantity_names`; derived metrics last, as in `nonfinite_code`), else
    `(False, None)`. Host-side (numpy), no jit."""
    names, leaves, derived = quantity_names(tree), jax.tree_util.tree_leaves(tree), _derived(tree)
    bad = [_is_float(leaf) and not np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves]
    for want_derived in (False, True):
        for name, is_bad, is_derived in zip(names, bad, derived):
            if is_bad and is_derived == want_derived:
                return True, name
    return False, None


def raise_for_code(code: Any, tree: Any, iteration: Optional[int], kept: str = KEPT_STATE) -> None:
    """Raises `NonFiniteError` for a code from `nonfinite_code(tree)` (no-op when -1). `tree` may
    still be on the device: it is fetched only when there is something to report."""
    code = int(code)
    if code < 0:
        return
    name = quantity_names(tree)[code]
    leaf = jax.device_get(jax.tree_util.tree_leaves(tree)[code])
    raise NonFiniteError(name, iteration, describe(leaf), kept)


def describe_named(name: str, tree: Any) -> str:
    """`describe` of the leaf of check tree `tree` named `name` (see `quantity_names`), or ""."""
    names = quantity_names(tree)
    if name not in names:
        return ""
    return describe(jax.device_get(jax.tree_util.tree_leaves(tree)[names.index(name)]))


def _host_float(arr: np.ndarray) -> bool:
    """`_is_float` for a NumPy array, without JAX's slower dtype promotion on the common kinds."""
    kind = arr.dtype.kind
    return kind in "fc" or (kind == "V" and _is_float(arr))  # "V": ml_dtypes such as bfloat16


def check_rows(values: dict, step: Optional[int] = None, row: str = "env index", allow_neg_inf: bool = False) -> None:
    """Host-side check of one sampling step's values, each `[N, ...]` (one row per env, or a
    pytree of such leaves) keyed by label ("env observation", "env reward", ...), before they are
    used: raises `NonFiniteError` naming the label, the env index and the bad value.

    `allow_neg_inf`: -inf is allowed (action-distribution inputs: a -inf logit masks an action,
    which the distributions handle); NaN and +inf are still errors. Runs every env step, so it
    stays cheap (a few microseconds for small arrays)."""
    for label, value in values.items():
        for leaf in jax.tree_util.tree_leaves(value):
            arr = np.asarray(leaf)
            if not _host_float(arr):
                continue
            bad = (np.isnan(arr) | (arr == np.inf)) if allow_neg_inf else ~np.isfinite(arr)
            if not bad.any():
                continue
            rows = bad.reshape(arr.shape[0], -1).any(axis=1) if arr.ndim else np.array([True])
            i = int(np.flatnonzero(rows)[0])
            at = f" at sampling step {step}" if step is not None else ""
            raise NonFiniteError(label, detail=f"{row} {i}{at} gave {arr[i] if arr.ndim else arr}")


def carry_first_nonfinite(first: tuple, code: jax.Array, iteration: jax.Array) -> tuple:
    """Scan-carry update: `first = (first_nonfinite_iteration, first_nonfinite_code)`, both int32
    and -1 until an iteration's `code` is not -1."""
    it, c = first
    new = (it < 0) & (code >= 0)
    return jnp.where(new, iteration, it).astype(jnp.int32), jnp.where(new, code, c).astype(jnp.int32)


class CheckedIteration:
    """For an all-in-jit trainer with `init(rng) -> state` and `_step(state) -> (state, metrics,
    check tree)`: `iteration` adds metrics["nonfinite_code"] (-1: all finite), `nonfinite_names`
    names the codes (computed once, from shapes only)."""

    def iteration(self, state: Any) -> tuple[Any, dict]:
        state, metrics, checked = self._step(state)  # type: ignore[attr-defined]
        metrics["nonfinite_code"] = nonfinite_code(checked)
        return state, metrics

    @functools.cached_property
    def nonfinite_names(self) -> tuple[str, ...]:
        """What `metrics["nonfinite_code"]` (and "first_nonfinite_code") index."""
        return quantity_names(jax.eval_shape(lambda: self._step(self.init(jax.random.key(0)))[2]))  # type: ignore[attr-defined]


def scan_with_first_nonfinite(iteration: Callable, state: Any, num_iterations: int) -> tuple[Any, dict]:
    """`num_iterations` calls of `iteration(state) -> (state, metrics)` in one `lax.scan`, carrying
    the first non-finite iteration: metrics["first_nonfinite_iteration"][t] is the (0-based) index
    of the first iteration up to t whose "nonfinite_code" was not -1, else -1, and
    metrics["first_nonfinite_code"][t] that iteration's code (so `[-1]` of both describe the run)."""
    def body(carry, t):
        state, first = carry
        state, metrics = iteration(state)
        first = carry_first_nonfinite(first, metrics["nonfinite_code"], t)
        metrics["first_nonfinite_iteration"], metrics["first_nonfinite_code"] = first
        return (state, first), metrics

    none = jnp.full((), -1, jnp.int32)
    (state, _), metrics = jax.lax.scan(body, (state, (none, none)), jnp.arange(num_iterations, dtype=jnp.int32))
    return state, metrics
