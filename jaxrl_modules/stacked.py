"""The stacked fast path: N identical modules as one vmapped computation.

Params and batches carry a leading module axis `[N, ...]`; each module's random stream is
`fold_in(rng, crc32(module_id))`, the same as in the dict path, so both give equal results.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp

from jaxrl_modules.batch_check import check_module_axis, check_rng
from jaxrl_modules.columns import Columns
from jaxrl_modules.param_check import describe


def module_keys(rng: jax.Array, mids: Sequence[str]) -> jax.Array:
    """`[N]` keys, one per ModuleID (equal to `module_rng(rng, mid)` each)."""
    ids = jnp.asarray([zlib.crc32(m.encode()) & 0x7FFFFFFF for m in mids], dtype=jnp.uint32)
    return jax.vmap(jax.random.fold_in, (None, 0))(rng, ids)


def stack_trees(trees: Sequence[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def unstack_tree(tree: Any, n: int) -> list:
    return [jax.tree_util.tree_map(lambda x, i=i: x[i], tree) for i in range(n)]


class StackedRLModules:
    """N copies of one module description run with `jax.vmap` over a leading module axis.

    `init(rng) -> stacked_params`; `forward_*(stacked_params, batch, rng)` with `obs: [N, B, ...]`
    returns outputs `[N, B, ...]`. Jitted closures are built once per object.
    """

    def __init__(self, module: Any, mids: tuple):
        self.module = module
        self.mids = mids
        self._fns: dict = {}

    def __len__(self) -> int:
        return len(self.mids)

    def _fn(self, key: Any, build: Any) -> Any:
        fn = self._fns.get(key)
        if fn is None:
            fn = self._fns[key] = jax.jit(build())
        return fn

    def init(self, rng: jax.Array) -> Any:
        return self._fn("init", lambda: lambda r: jax.vmap(self.module.init_fn)(module_keys(r, self.mids)))(rng)

    def _phase(self, phase: str, params: Any, batch: dict, rng: Optional[jax.Array]) -> dict:
        def build():
            f = self.module.phase_fn(phase)

            def run(params, batch, rng):
                n, where = len(self.mids), f"stacked({list(self.mids)}).forward_{phase}"
                check_rng(rng, where, required=phase == "exploration")
                self.module._check_params(params, phase, where=where, root="stacked params", lead=(n,))
                if not isinstance(batch, Mapping) or Columns.OBS not in batch:
                    got = sorted(batch) if isinstance(batch, Mapping) else describe(batch)
                    raise ValueError(f"{where}: the batch must be a dict with {Columns.OBS!r} of shape (N={n}, B, ...); "
                                     f"got {got}")
                check_module_axis(batch, n, f"{where}: batch", f" (one slice per ModuleID {list(self.mids)})")
                rng = jax.random.key(0) if rng is None else rng
                return jax.vmap(f)(params, batch, module_keys(rng, self.mids))

            return run

        return self._fn(phase, build)(params, batch, rng)

    def forward_exploration(self, params: Any, batch: dict, rng: jax.Array) -> dict:
        return self._phase("exploration", params, batch, rng)

    def forward_inference(self, params: Any, batch: dict, rng: Optional[jax.Array] = None) -> dict:
        return self._phase("inference", params, batch, rng)

    def forward_train(self, params: Any, batch: dict, rng: Optional[jax.Array] = None) -> dict:
        return self._phase("train", params, batch, rng)
