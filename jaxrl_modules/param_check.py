"""Params checked against a module's structure: the leaf paths, shapes and dtype kinds that
`init` produces. Used at trace time by the forward passes (so it costs nothing per call) and
by anything that wants the same comparison (checkpoints).

`check_params(expected_abstract, params, where)` raises a ValueError naming the first
differing leaf path with both shapes (a TypeError when params are not a dict pytree at all).
Float leaves may be of another float precision (mixed precision); an int where a float is
expected is a mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np


def _kind(dtype: Any) -> str:
    dtype = jnp.dtype(dtype)
    for name, base in (("float", jnp.floating), ("int", jnp.integer), ("bool", jnp.bool_), ("complex", jnp.complexfloating)):
        if jnp.issubdtype(dtype, base):
            return name
    return str(dtype)


def _leaf_spec(x: Any) -> tuple[tuple, str]:
    shape = tuple(x.shape) if hasattr(x, "shape") else tuple(np.shape(x))
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    return shape, str(jnp.dtype(dtype)) if not jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) else str(dtype)


def flat_spec(tree: Any) -> dict:
    """`{leaf path: (shape, dtype str)}` of a (possibly abstract or traced) pytree, in tree order."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): _leaf_spec(x) for p, x in flat}


def _top_keys(spec: dict) -> list:
    return sorted({p[2:p.index("']")] if p.startswith("['") and "']" in p else p for p in spec})


def describe(x: Any) -> str:
    """What a value is, for messages (traced arrays by shape and dtype, not by tracer class)."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"an array of shape {tuple(x.shape)} {x.dtype}"
    return type(x).__name__


def _fmt(shape: tuple, dtype: str) -> str:
    return f"{tuple(shape)} {dtype}"


def check_params(expected_abstract: Any, params: Any, where: str, *, lead: tuple = (),
                 ignore: Iterable[str] = (), root: str = "params") -> None:
    """Raises unless `params` has exactly the leaves of `expected_abstract` (a pytree of
    arrays or ShapeDtypeStructs, or a precomputed `flat_spec` dict wrapped as `FlatSpec`).

    `lead`: a leading shape every params leaf carries in addition (the stacked path's module
    axis `(N,)`). `ignore`: top-level keys that may be present without being expected (the
    non-acting parts an acting forward pass never reads). `root`: how messages name params.
    """
    expected = expected_abstract.spec if isinstance(expected_abstract, FlatSpec) else flat_spec(expected_abstract)
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}: {root} must be a dict pytree as init() returns it; got {describe(params)}")
    ignore = frozenset(ignore)
    got_tree = {k: v for k, v in params.items() if k not in ignore} if ignore else params
    got = flat_spec(got_tree)
    lead = tuple(lead)
    axis = f" (stacked params carry a leading module axis of size {lead[0]})" if lead else ""
    for path, (shape, dtype) in expected.items():
        want = lead + tuple(shape)
        if path not in got:
            raise ValueError(f"{where}: {root}{path} is missing; the module expects shape {_fmt(want, dtype)} there{axis} "
                             f"(params have top-level keys {sorted(map(str, params))})")
        g_shape, g_dtype = got[path]
        if g_shape != want or _kind(g_dtype) != _kind(dtype):
            raise ValueError(f"{where}: {root}{path} has shape {_fmt(g_shape, g_dtype)}; the module expects shape "
                             f"{_fmt(want, dtype)}{axis}")
    for path, (shape, dtype) in got.items():
        if path not in expected:
            raise ValueError(f"{where}: {root}{path} with shape {_fmt(shape, dtype)} is not part of the module; it has "
                             f"top-level keys {_top_keys(expected)}")


class FlatSpec:
    """A precomputed `flat_spec` (so repeated checks skip flattening the expected tree)."""

    __slots__ = ("spec",)

    def __init__(self, abstract: Any):
        self.spec = flat_spec(abstract)

    def without(self, keys: Iterable[str]) -> "FlatSpec":
        drop = tuple(f"[{k!r}]" for k in keys)
        out = FlatSpec({})
        out.spec = {p: s for p, s in self.spec.items() if not p.startswith(drop)} if drop else dict(self.spec)
        return out
