"""An algorithm's state (learner params, optax state, target params, RNG, counters, env state) on disk.

orbax saves the state as nested dicts keyed by its readable path components (NamedTuple field names,
dict keys, sequence indices as strings; typed PRNG keys as their key data), so `algorithm_state/`
holds e.g. `learner/params/pi/out/kernel` and `learner/opt_state/0/0/mu/pi/out/kernel` (in orbax's tree
metadata, `_METADATA` or `StandardCheckpointer().metadata(path)`: OCDBT names its data files by hash;
algorithm.json's "state" lists the same paths with shapes and dtypes). Restoring checks
every array against the state this algorithm has (missing, extra, shape, dtype: ValueErrors naming the
readable path) before orbax reads anything. Checkpoints written before (algorithm.json without
"state_format": flat `leaf_00000 ...` arrays in `jax.tree_util` order) are still read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrl_modules.distributed import orbax_this_process

STATE_FORMAT = "jaxrl_modules.algorithm_state/2"  # algorithm.json's "state_format"; absent: the leaf_NNNNN layout
STATE_DIR = "algorithm_state"
AGAIN = "(was it saved with a different config?)"


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _as_saved(x: Any) -> Any:
    """A state leaf as saved: typed PRNG keys as their key data."""
    return jax.random.key_data(x) if _is_key(x) else x


def saved_shape_dtype(x: Any) -> tuple[tuple, np.dtype]:
    """Shape and dtype of a state leaf as saved, without copying it to the host."""
    x = _as_saved(x)
    return tuple(np.shape(x)), np.dtype(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype)


def _component(key: Any) -> str:
    """One readable path component: a NamedTuple/dataclass field name, a dict key, a sequence index."""
    for attr in ("name", "key", "idx"):  # GetAttrKey, DictKey / FlattenedIndexKey, SequenceKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _path_parts(path: tuple) -> tuple[str, ...]:
    return tuple(_component(k) for k in path) or ("state",)


def _entries(state: Any, legacy: bool = False) -> list[tuple[str, tuple, Any]]:
    """`(name, path parts, leaf)` of each state leaf in `jax.tree_util` order: the name is the
    `/`-joined readable path, or `leaf_NNNNN` in the old (legacy) layout."""
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    out = []
    for i, (path, x) in enumerate(flat):
        parts = _path_parts(path)
        out.append((f"leaf_{i:05d}" if legacy else "/".join(parts), (f"leaf_{i:05d}",) if legacy else parts, x))
    return out


def state_meta(state: Any) -> dict:
    """algorithm.json's state entries: the format marker, `num_leaves` and the readable index
    `{path: {"shape", "dtype"}}` of the state as saved."""
    index = {}
    for name, _, x in _entries(state):
        shape, dtype = saved_shape_dtype(x)
        index[name] = {"shape": list(shape), "dtype": str(dtype)}
    return {"state_format": STATE_FORMAT, "num_leaves": len(jax.tree_util.tree_leaves(state)), "state": index}


def _nest(items: Any) -> dict:
    """Nested dicts from `(path parts, value)` pairs."""
    tree: dict = {}
    for parts, value in items:
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def to_named_tree(state: Any) -> dict:
    """The state as nested dicts of numpy arrays keyed by readable path components (orbax's item).
    A ValueError when two arrays would get the same name (dict keys "a/b" or "a.b" beside a key "a" holding "b")."""
    seen: dict = {}
    for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]:
        parts = _path_parts(path)
        for joined in {"/".join(parts), ".".join(parts)}:  # our lookups use '/', orbax names arrays by '.'
            if joined in seen:
                raise ValueError(f"Cannot save the algorithm state: state{jax.tree_util.keystr(path)} and {seen[joined]} "
                                 f"would both be saved as {joined!r}; expected distinct readable paths")
            seen[joined] = f"state{jax.tree_util.keystr(path)}"
    return _nest((parts, np.asarray(_as_saved(x))) for _, parts, x in _entries(state))


def save_state(directory: Path, state: Any) -> None:
    """Writes `state` with orbax into `directory / "algorithm_state"`."""
    import orbax.checkpoint as ocp

    tree = to_named_tree(state)
    with ocp.StandardCheckpointer(multiprocessing_options=orbax_this_process()) as ckptr:
        ckptr.save(directory / STATE_DIR, tree)
        ckptr.wait_until_finished()


def _flat_names(tree: Any) -> dict:
    """`{'/'-joined path: leaf}` of a nested dict (orbax's restored item or metadata tree)."""
    return {"/".join(_path_parts(p)): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _shape_dtype_text(shape: Any, dtype: Any) -> str:
    return f"shape {tuple(shape)} {dtype}"


def check_arrays(stored: dict, expected: dict, where: str) -> None:
    """`stored` and `expected` (`{name: (shape, dtype, readable path)}`) hold the same arrays: a ValueError
    naming the first missing, extra or differing array (by its readable path) and what was expected."""
    def label(name: str) -> str:
        readable = expected[name][2] if name in expected else None
        return name if readable in (None, name) else f"{name} ({readable})"

    for name, (shape, dtype, _) in expected.items():
        if name not in stored:
            raise ValueError(f"{where} lacks state array {label(name)}, expected with {_shape_dtype_text(shape, dtype)}; "
                             f"it has {len(stored)} state arrays, this algorithm {len(expected)} {AGAIN}")
        got_shape, got_dtype = stored[name][:2]
        if tuple(got_shape) != tuple(shape) or str(got_dtype) != str(dtype):
            raise ValueError(f"{where} state array {label(name)} has {_shape_dtype_text(got_shape, got_dtype)}; "
                             f"this algorithm expects {_shape_dtype_text(shape, dtype)} {AGAIN}")
    extra = sorted(set(stored) - set(expected))
    if extra:
        raise ValueError(f"{where} holds state array {extra[0]} ({_shape_dtype_text(*stored[extra[0]][:2])}) that this "
                         f"algorithm does not have ({len(extra)} such arrays) {AGAIN}")


def expected_arrays(like: Any, legacy: bool) -> dict:
    """`{name: (shape, dtype, readable path)}` of this algorithm's state as saved."""
    return {name: (*saved_shape_dtype(x), "/".join(_path_parts(path)))
            for (name, _, x), (path, _) in zip(_entries(like, legacy), jax.tree_util.tree_flatten_with_path(like)[0])}


def check_index(meta: dict, like: Any, where: str) -> bool:
    """Checks algorithm.json's `state` index and `num_leaves` against `like` (ValueErrors naming the
    readable path); returns whether the checkpoint has the old `leaf_NNNNN` layout."""
    legacy = meta.get("state_format") != STATE_FORMAT
    expected = expected_arrays(like, legacy)
    index = meta.get("state")
    if index is not None:
        check_arrays({k: (v["shape"], v["dtype"]) for k, v in index.items()}, expected, where)
    if meta["num_leaves"] != len(expected):
        raise ValueError(f"{where} says the checkpoint holds {meta['num_leaves']} state arrays (num_leaves); this "
                         f"algorithm has {len(expected)} {AGAIN}")
    return legacy


def read_state(path: Path, like: Any, legacy: bool) -> Any:
    """The state saved in `path / "algorithm_state"`, in `like`'s structure. Its arrays are checked
    against `like`'s in orbax's own metadata first, so a differing file is named before anything is read."""
    import orbax.checkpoint as ocp

    where = f"Algorithm checkpoint {str(path / STATE_DIR)!r}"
    expected = expected_arrays(like, legacy)
    entries = _entries(like, legacy)
    target = _nest((parts, jax.ShapeDtypeStruct(*expected[name][:2])) for name, parts, _ in entries)
    if not (path / STATE_DIR).is_dir():
        raise _corrupt(path, f"{STATE_DIR}/ not found; found {sorted(p.name for p in path.iterdir())[:8]}")
    with ocp.StandardCheckpointer(multiprocessing_options=orbax_this_process()) as ckptr:
        tree = _guarded(path, lambda: getattr(ckptr.metadata(path / STATE_DIR).item_metadata, "tree", None))
        if not isinstance(tree, dict):
            raise _corrupt(path, f"expected orbax metadata of a dict of state arrays; found {type(tree).__name__}")
        stored = _guarded(path, lambda: {k: (tuple(m.shape), np.dtype(m.dtype)) for k, m in _flat_names(tree).items()})
        check_arrays(stored, expected, where)
        restored = _guarded(path, lambda: _flat_names(ckptr.restore(path / STATE_DIR, target)))
    return _to_state(restored, [name for name, _, _ in entries], like)


def _guarded(path: Path, read: Any) -> Any:
    """`read()`, any error from inside orbax/tensorstore raised as a ValueError naming the checkpoint."""
    try:
        return read()
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError, AssertionError, AttributeError) as err:
        raise _corrupt(path, err) from None


def _corrupt(path: Path, err: Any) -> ValueError:
    why = f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else err
    return ValueError(f"Corrupt algorithm checkpoint {str(path)!r}: cannot read {STATE_DIR}/ ({why})")


def _to_state(restored: dict, names: list, like: Any) -> Any:
    """Restored arrays (`{name: array}`) in `like`'s structure: typed PRNG keys rewrapped, jax arrays
    as jax arrays, host-side numpy leaves (counters) as numpy, keeping e.g. int64."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    out = []
    for name, x in zip(names, leaves):
        value = np.asarray(restored[name])
        if _is_key(x):
            out.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(x)))
        elif isinstance(x, jax.Array):
            out.append(jax.numpy.asarray(value, dtype=x.dtype))
        else:
            out.append(np.asarray(value, dtype=saved_shape_dtype(x)[1]))
    return jax.tree_util.tree_unflatten(treedef, out)
