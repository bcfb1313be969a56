"""TrainFn: what `build_train_fn` returns, a pure `train(rng) -> (params, metrics)` with the pieces
it is made of, in a frozen object instead of attributes set on a function."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from jaxrl_modules.algorithms.nonfinite import scan_with_first_nonfinite
from jaxrl_modules.batch_check import check_rng


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TrainFn:
    """`train(rng) -> (params, metrics)`: `init(rng) -> state`, then `num_iterations` calls of
    `iteration(state) -> (state, metrics)` in one `lax.scan` (`scan_with_first_nonfinite`); params
    as `get_params()` returns them, metrics with a leading iteration axis. Pure: `jax.jit(train)`,
    `jax.jit(jax.vmap(train))(keys)` work as on a function (hashed by identity, as a function is).

    `params(state)` reads the params out of the final state. `module` is the RLModule the params
    belong to; `nonfinite_names[code]` names the quantity of a `metrics["nonfinite_code"]` /
    `"first_nonfinite_code"`."""

    module: Any
    nonfinite_names: tuple[str, ...]
    init: Callable[[jax.Array], Any]
    iteration: Callable[[Any], tuple[Any, dict]]
    num_iterations: int
    params: Callable[[Any], Any]  # the params of a train state (the learner's)

    def __call__(self, rng: jax.Array) -> tuple[Any, dict]:
        check_rng(rng, "build_train_fn(...)'s train(rng)", required=True)  # at trace time under jit
        state, metrics = scan_with_first_nonfinite(self.iteration, self.init(rng), self.num_iterations)
        return self.params(state), metrics

    def __repr__(self) -> str:
        return f"TrainFn({type(self.module).__name__}, num_iterations={self.num_iterations})"
