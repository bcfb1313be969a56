"""Trace-time checks across the leaves of a batch: consistent batch sizes, recurrent state
shaped like `get_initial_state()`, usable random keys, the stacked path's module axis.

They run while a jitted function is traced, so they cost nothing per call.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.param_check import describe


def _leaves(tree: Any, where: str) -> list[tuple[str, Any]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(where + jax.tree_util.keystr(p), x) for p, x in flat]


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else tuple(np.shape(x))


def check_lead_consistent(tree: Any, lead: int, where: str) -> tuple:
    """All leaves of `tree` share their first `lead` dims (the batch / time axes); returns them."""
    first = None
    for name, x in _leaves(tree, where):
        dims = _shape(x)[:lead]
        if first is None:
            first = (name, dims)
        elif dims != first[1]:
            axes = "batch axis" if lead == 1 else "batch and time axes"
            raise ValueError(f"{name} has {axes} {dims}, but {first[0]} has {first[1]}: every leaf of {where} "
                             "needs the same leading dims")
    return first[1] if first is not None else ()


def check_state_in(initial_state: Any, state_in: Any, batch_size: int, where: str = "state_in") -> None:
    """`state_in` is `get_initial_state()` with a leading batch axis of `batch_size`."""
    want = {p: _shape(x) for p, x in _leaves(initial_state, where)}
    if isinstance(initial_state, Mapping) and not isinstance(state_in, Mapping):
        raise TypeError(f"{where} must be a dict with keys {sorted(initial_state)} (get_initial_state() with a batch axis); "
                        f"got {describe(state_in)}")
    got = {p: _shape(x) for p, x in _leaves(state_in, where)}
    missing = [p for p in want if p not in got]
    if missing:
        raise ValueError(f"{where} lacks {missing[0]}; expected {sorted(want)} shaped like get_initial_state() with a "
                         f"batch axis; got {sorted(got)}")
    extra = [p for p in got if p not in want]
    if extra:
        raise ValueError(f"{where} has {extra[0]}, which get_initial_state() lacks; expected exactly {sorted(want)}")
    for p, shape in want.items():
        expected = (batch_size,) + shape
        if got[p] != expected:
            raise ValueError(f"{p} has shape {got[p]}; expected {expected} = (B={batch_size}, *{shape}) "
                             "(the batch size of obs, then the shape of get_initial_state())")


@functools.lru_cache(maxsize=None)
def _raw_key_shape() -> tuple:
    return tuple(jax.random.key_data(jax.random.key(0)).shape)


def check_rng(rng: Any, where: str, required: bool) -> None:
    """A typed key `jax.random.key(seed)` of shape (), or a raw uint32 `PRNGKey` (legacy)."""
    if rng is None:
        if required:
            raise TypeError(f"{where} needs an rng: jax.random.key(seed); got None")
        return
    dtype = getattr(rng, "dtype", None)
    if dtype is None or isinstance(rng, (bool, int, float)):
        raise TypeError(f"{where}: rng must be a jax.random.key(seed); got {type(rng).__name__} {rng!r}"[:300])
    shape = _shape(rng)
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(f"{where}: rng must be one key of shape (); got a key array of shape {shape} "
                             "(split it outside, or vmap the call over the keys)")
        return
    if jnp.dtype(dtype) == jnp.uint32 and shape == _raw_key_shape():
        return
    hint = " (an int seed? pass jax.random.key(seed))" if shape == () and jnp.issubdtype(dtype, jnp.integer) else ""
    raise TypeError(f"{where}: rng must be a jax.random.key(seed) (or a raw uint32 jax.random.PRNGKey of shape "
                    f"{_raw_key_shape()}); got an array of dtype {jnp.dtype(dtype)} and shape {shape}{hint}")


def check_module_axis(tree: Any, n: int, where: str, what: str = "") -> None:
    """Every leaf carries the stacked path's leading module axis of size `n`."""
    for name, x in _leaves(tree, where):
        shape = _shape(x)
        if not shape or shape[0] != n:
            raise ValueError(f"{name} has shape {shape}; the stacked path expects a leading module axis of size {n} "
                             f"(shape ({n}, ...)){what}")


def module_id_error(mid: Any, where: str, known: Optional[Any] = None) -> Optional[Exception]:
    """The error for a bad ModuleID (None if `mid` is a usable one): a non-empty str without `/`."""
    if not isinstance(mid, str):
        return TypeError(f"{where}: a ModuleID must be a str; got {type(mid).__name__} {mid!r}")
    if not mid or mid.strip() != mid or "/" in mid or "\\" in mid or mid in (".", ".."):
        return ValueError(f"{where}: ModuleID {mid!r} is not usable: expected a non-empty str without '/', '\\' or "
                          "surrounding spaces (it names params and checkpoint folders)")
    if known is not None and mid not in known:
        return KeyError(f"{where}: ModuleID {mid!r} not found; available: {sorted(known)}")
    return None


def check_module_ids(mids: Any, where: str, known: Optional[Any] = None, allow_empty: bool = False) -> list:
    """A list of usable, distinct ModuleIDs (each in `known` when given)."""
    if isinstance(mids, str) or not hasattr(mids, "__iter__"):
        raise TypeError(f"{where}: ModuleIDs must be a list of str; got {type(mids).__name__} {mids!r}")
    mids = list(mids)
    if not mids and not allow_empty:
        raise ValueError(f"{where}: expected at least one ModuleID; got an empty list")
    for mid in mids:
        err = module_id_error(mid, where, known)
        if err is not None:
            raise err
    dup = sorted({m for m in mids if mids.count(m) > 1})
    if dup:
        raise ValueError(f"{where}: ModuleIDs must be distinct; got {dup} more than once in {mids}")
    return mids
