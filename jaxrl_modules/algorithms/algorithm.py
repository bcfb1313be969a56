"""Algorithm: the stateful shell around pure training functions (RLlib's `Algorithm`).

It builds the module from the config and the env's spaces, holds the learner state, the
RNG and counters, and offers train / evaluate / get_module / get_params / save / restore.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np

from jaxrl_modules.columns import DEFAULT_MODULE_ID

COMPONENT_PREFIX = "learner_group/learner/rl_module"


def _to_numpy_leaves(tree: Any) -> tuple[dict, Any]:
    """Leaves as numpy arrays keyed by index (typed PRNG keys as their raw key data)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out = {}
    for i, x in enumerate(leaves):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out[f"leaf_{i:05d}"] = np.asarray(x)
    return out, treedef


def _from_numpy_leaves(stored: dict, like: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(like)
    if len(stored) != len(leaves):
        raise ValueError(f"Algorithm checkpoint holds {len(stored)} state arrays; this algorithm has {len(leaves)} "
                         "(was it saved with a different config?)")
    restored = []
    for i, x in enumerate(leaves):
        value = stored[f"leaf_{i:05d}"]
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            restored.append(jax.random.wrap_key_data(value))
            continue
        if tuple(value.shape) != tuple(np.shape(x)):
            raise ValueError(f"Algorithm checkpoint state array {i} has shape {tuple(value.shape)}; this algorithm "
                             f"expects {tuple(np.shape(x))} (was it saved with a different config?)")
        if isinstance(x, jax.Array):
            restored.append(jax.numpy.asarray(value, dtype=x.dtype))
        else:  # host-side numpy state (counters) stays numpy, keeping e.g. int64
            restored.append(np.asarray(value, dtype=np.asarray(x).dtype))
    return jax.tree_util.tree_unflatten(treedef, restored)


class Algorithm:
    """Subclasses implement `_setup()`, `training_step() -> dict` and `_state()/_set_state()`."""

    def __init__(self, config: Any):
        self.config = config
        self.iteration = 0
        self.module: Any = None
        self._setup()

    # ----------------------------------------------------------------- subclass hooks
    def _setup(self) -> None:
        raise NotImplementedError

    def training_step(self) -> dict:
        raise NotImplementedError

    def _state(self) -> Any:
        raise NotImplementedError

    def _set_state(self, state: Any) -> None:
        raise NotImplementedError

    def _params(self) -> Any:
        raise NotImplementedError

    def _set_params(self, params: Any) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- public API
    def train(self) -> dict:
        """One training iteration; returns RLlib-style results."""
        start = time.perf_counter()
        result = self.training_step()
        self.iteration += 1
        result["training_iteration"] = self.iteration
        result["time_this_iter_s"] = time.perf_counter() - start
        return result

    def get_module(self, module_id: str = DEFAULT_MODULE_ID) -> Any:
        from jaxrl_modules.multi_rl_module import MultiRLModule

        if isinstance(self.module, MultiRLModule):
            return self.module if module_id is None else self.module[module_id]
        if module_id not in (DEFAULT_MODULE_ID, None):
            raise KeyError(f"Module ID {module_id!r} not found; this algorithm has {DEFAULT_MODULE_ID!r}")
        return self.module

    def get_params(self, module_id: Optional[str] = None) -> Any:
        """A snapshot of the params (later training does not change it)."""
        params = self._params()
        if module_id is not None and self._is_multi():
            params = params[module_id]
        return jax.tree_util.tree_map(lambda x: np.array(x), params)

    def _is_multi(self) -> bool:
        from jaxrl_modules.multi_rl_module import MultiRLModule

        return isinstance(self.module, MultiRLModule)

    def save_to_path(self, path: Any) -> str:
        """Everything to resume: params, optimizer state, RNG, counters (and, all-in-jit, env state),
        plus a module checkpoint under `learner_group/learner/rl_module/<module_id>`."""
        from jaxrl_modules.checkpoint import _atomic_dir, _write_json, _write_module

        import orbax.checkpoint as ocp

        def write(tmp: Path) -> None:
            leaves, _ = _to_numpy_leaves(self._state())
            with ocp.StandardCheckpointer() as ckptr:
                ckptr.save(tmp / "algorithm_state", leaves)
                ckptr.wait_until_finished()
            params = self._params()
            modules = self.module.items() if self._is_multi() else [(DEFAULT_MODULE_ID, self.module)]
            for mid, sub in modules:
                target = tmp / COMPONENT_PREFIX / mid
                target.mkdir(parents=True)
                _write_module(sub, params[mid] if self._is_multi() else params, target)
            _write_json(tmp / "algorithm.json", {"algorithm": type(self).__name__, "iteration": self.iteration,
                                                 "num_leaves": len(leaves)})

        return _atomic_dir(Path(path), write)

    def restore_from_path(self, path: Any, component: Optional[str] = None) -> None:
        """Restores a whole algorithm checkpoint, or with `component=
        "learner_group/learner/rl_module/<module_id>"` loads a module checkpoint (at `path`)
        into that module of the running algorithm."""
        import orbax.checkpoint as ocp

        from jaxrl_modules.checkpoint import restore_params

        path = Path(path).absolute()
        if component is not None:
            prefix = COMPONENT_PREFIX + "/"
            if not component.startswith(prefix):
                raise ValueError(f"Unknown component {component!r}; expected '{prefix}<module_id>'")
            mid = component[len(prefix):]
            params = self._params()
            if self._is_multi():
                if mid not in self.module:
                    raise ValueError(f"Unknown ModuleID {mid!r} in component; this algorithm has {self.module.keys()}")
                new = dict(params)
                new[mid] = restore_params(self.module[mid], path, expected=jax.eval_shape(lambda: params[mid]))
            else:
                if mid != DEFAULT_MODULE_ID:
                    raise ValueError(f"Unknown ModuleID {mid!r} in component; this algorithm has {DEFAULT_MODULE_ID!r}")
                new = restore_params(self.module, path, expected=jax.eval_shape(lambda: params))
            self._set_params(new)
            return
        meta_file = path / "algorithm.json"
        if not meta_file.is_file():
            raise ValueError(f"{str(path)!r} is not an algorithm checkpoint: algorithm.json is missing")
        meta = json.loads(meta_file.read_text())
        if meta.get("algorithm") != type(self).__name__:
            raise ValueError(f"Checkpoint {str(path)!r} is of a {meta.get('algorithm')}; this is a {type(self).__name__}")
        like, _ = _to_numpy_leaves(self._state())
        target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in like.items()}
        with ocp.StandardCheckpointer() as ckptr:
            stored = ckptr.restore(path / "algorithm_state", target) if len(target) == meta["num_leaves"] else None
        if stored is None:
            raise ValueError(f"Algorithm checkpoint {str(path)!r} holds {meta['num_leaves']} state arrays; this "
                             f"algorithm has {len(target)} (was it saved with a different config?)")
        self._set_state(_from_numpy_leaves({k: np.asarray(v) for k, v in stored.items()}, self._state()))
        self.iteration = int(meta["iteration"])

    def stop(self) -> None:
        """Closes envs."""
