"""Module checkpoints: params through orbax-checkpoint plus a JSON metadata file.

Layout of a single-module checkpoint directory:
    metadata.json   class import path, spaces, model config, inference_only, version, a unique
                    save_id, and every param leaf's path, shape and dtype
    params/         the orbax checkpoint of the params pytree
    class.pkl       cloudpickle of the class and config, a fallback for classes defined in
                    notebooks or test files that cannot be imported by path
A MultiRLModule checkpoint has its own metadata.json and one such directory per ModuleID.

Saving never destroys data and is atomic for readers (`jaxrl_modules.atomic_dir`): params
are checked against the module first, the target must be new, empty or one of our
checkpoints of the same kind, and the new version is written beside it and swapped in.
Restores are strict (class, tree, every shape and dtype must match) and every problem with
the files (missing keys, wrong types, garbage JSON, unreadable params) is a ValueError naming
the file and what is wrong. The class comes from `metadata.json`'s `module_class` when it
imports, else from class.pkl; only when neither works is loading an error.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import cloudpickle
import jax
import numpy as np

from jaxrl_modules.atomic_dir import atomic_dir, new_save_id, path_text, read_consistently
from jaxrl_modules.distributed import orbax_this_process
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.rl_module_spec import RLModuleSpec
from jaxrl_modules.serialization import space_from_json, space_to_json
from jaxrl_modules.version import __version__

FORMAT = "jaxrl_modules.checkpoint/1"
MODULE_ENTRIES = frozenset({"metadata.json", "params", "class.pkl"})
ALGORITHM_ENTRIES = frozenset({"algorithm.json", "algorithm_state", "learner_group"})
# What unpickling a garbage, truncated or foreign class.pkl may raise.
_UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError,
                    IndexError, KeyError, OverflowError, UnicodeDecodeError, struct.error, RecursionError, MemoryError)
# What orbax/tensorstore raise for missing, truncated or foreign data.
_ORBAX_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError, AssertionError)


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str) -> type:
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _config_to_json(config: Any) -> Any:
    if isinstance(config, DefaultModelConfig):
        return {"__DefaultModelConfig__": _jsonable(config.to_dict())}
    return _jsonable(config)


def _config_from_json(data: Any, where: str, config_cls: type = DefaultModelConfig) -> Any:
    """`config_cls`: the module class's `model_config_class` (a DefaultModelConfig subclass with
    the algorithm's settings, e.g. DQN's), else DefaultModelConfig."""
    if isinstance(data, dict) and "__DefaultModelConfig__" in data:
        fields = data["__DefaultModelConfig__"]
        if not isinstance(fields, dict):
            _bad(where, f"a dict of {config_cls.__name__} fields", fields)
        try:
            return config_cls(**fields)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} is not a valid {config_cls.__name__}: {err}") from None
    return data


def _jsonable(value: Any) -> Any:
    """JSON-friendly copy; callables (custom initializers) become their import path."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if callable(value):
        return f"<callable {getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}>"
    if isinstance(value, np.generic):
        return value.item()
    return value


def _bad(where: str, expected: str, got: Any) -> None:
    raise ValueError(f"{where} must be {expected}; got {got!r} ({type(got).__name__})")


def _leaf_spec(key: str, x: Any) -> list:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return [list(x.shape), str(x.dtype)]
    if isinstance(x, (bool, int, float, complex, np.generic)):
        arr = np.asarray(x)
        return [list(arr.shape), str(arr.dtype)]
    raise ValueError(f"params leaf params{key} must be an array; got {type(x).__name__} {x!r}")


def tree_spec(params: Any) -> dict:
    """`{leaf path: [shape, dtype]}` of a (possibly abstract) params pytree, in tree order."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(p): _leaf_spec(jax.tree_util.keystr(p), x) for p, x in flat}


def _compare(expected: dict, stored: dict, where: str, stored_name: str = "checkpoint",
             stored_has: str = "checkpoint has", does: str = "does") -> None:
    """ValueError naming the first leaf where `stored` differs from `expected` (the module's)."""
    for key, (shape, dtype) in expected.items():
        if key not in stored:
            raise ValueError(f"{where} {does} not match the module: leaf params{key} with shape {tuple(shape)} "
                             f"is missing from the {stored_name}")
        s_shape, s_dtype = stored[key]
        if list(s_shape) != list(shape) or s_dtype != dtype:
            raise ValueError(f"{where} {does} not match the module at leaf params{key}: {stored_has} shape "
                             f"{tuple(s_shape)} {s_dtype}, the module expects shape {tuple(shape)} {dtype}")
    extra = [k for k in stored if k not in expected]
    if extra:
        raise ValueError(f"{where} {does} not match the module: leaf params{extra[0]} with shape "
                         f"{tuple(stored[extra[0]][0])} is not part of the module")


def abstract_params(module: Any) -> Any:
    return jax.eval_shape(module.init_fn, jax.random.key(0))


def check_params(module: Any, params: Any, expected: Any = None) -> None:
    """ValueError naming the first leaf where `params` differ from what `module.init` gives
    (path, both shapes and dtypes); params of another module are refused this way."""
    if module.is_multi_rl_module:
        if not isinstance(params, Mapping):
            _bad("MultiRLModule params", f"a dict keyed by ModuleID {sorted(module.keys())}", params)
        missing = [mid for mid in module.keys() if mid not in params]
        extra = [mid for mid in params if mid not in module.keys()]
        if missing or extra:
            raise ValueError(f"params must hold exactly the module's ModuleIDs {sorted(module.keys())}; got "
                             f"{sorted(map(str, params))} (missing {missing}, unknown {sorted(map(str, extra))})")
    expected = abstract_params(module) if expected is None else expected
    _compare(tree_spec(expected), tree_spec(params), "The params to save", "params", "the params have", "do")


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _module_metadata(module: Any, params: Any) -> dict:
    return {
        "format": FORMAT, "kind": "rl_module", "module_class": class_path(type(module)),
        "observation_space": space_to_json(module.observation_space),
        "action_space": space_to_json(module.action_space),
        "inference_only": bool(module.inference_only), "model_config": _config_to_json(module.model_config),
        "library_version": __version__, "save_id": new_save_id(), "params": tree_spec(params),
    }


def _write_module(module: Any, params: Any, directory: Path) -> None:
    import orbax.checkpoint as ocp

    params = jax.device_get(params)
    with ocp.StandardCheckpointer(multiprocessing_options=orbax_this_process()) as ckptr:
        ckptr.save(directory / "params", params)
        ckptr.wait_until_finished()
    with open(directory / "class.pkl", "wb") as f:
        cloudpickle.dump({"class": type(module), "model_config": module.model_config}, f)
    _write_json(directory / "metadata.json", _module_metadata(module, params))


def identify(path: Path) -> Optional[tuple]:
    """`(kind, entries it may hold)` of one of our checkpoints at `path`, else None."""
    try:
        if (path / "metadata.json").is_file():
            meta = json.loads((path / "metadata.json").read_text())
            if isinstance(meta, dict) and meta.get("format") == FORMAT and meta.get("kind") == "rl_module":
                return "rl_module", MODULE_ENTRIES
            if isinstance(meta, dict) and meta.get("format") == FORMAT and meta.get("kind") == "multi_rl_module":
                ids = meta.get("module_ids")
                if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
                    return "multi_rl_module", frozenset({"metadata.json", "class.pkl", *ids})
        if (path / "algorithm.json").is_file():
            meta = json.loads((path / "algorithm.json").read_text())
            if isinstance(meta, dict) and isinstance(meta.get("algorithm"), str) and "num_leaves" in meta:
                return "algorithm", ALGORITHM_ENTRIES
    except (OSError, ValueError):  # unreadable or not JSON: not recognisably ours
        return None
    return None


def save_id(path: Path) -> Optional[str]:
    """The unique id of the save that wrote the checkpoint at `path` (None if unreadable)."""
    for name in ("metadata.json", "algorithm.json"):
        try:
            meta = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        return meta.get("save_id") if isinstance(meta, dict) else None
    return None


def save_dir(path: Any, write: Any, kind: str) -> str:
    """Writes a `kind` checkpoint at `path` with `write(tmp_dir)`, safely and atomically."""
    return atomic_dir(path, write, kind, identify)


def save_module(module: Any, params: Any, path: Any) -> str:
    """Saves a module (or MultiRLModule) and its params atomically; returns the path."""
    check_params(module, params)
    if module.is_multi_rl_module:
        def write(tmp: Path) -> None:
            for mid, sub in module.items():
                (tmp / mid).mkdir()
                _write_module(sub, params[mid], tmp / mid)
            with open(tmp / "class.pkl", "wb") as f:
                cloudpickle.dump({"class": type(module)}, f)
            _write_json(tmp / "metadata.json", {
                "format": FORMAT, "kind": "multi_rl_module", "module_class": class_path(type(module)),
                "module_ids": list(module.keys()), "inference_only": bool(module.inference_only),
                "model_config": _config_to_json(module.model_config), "library_version": __version__,
                "save_id": new_save_id()})

        return save_dir(path, write, "multi_rl_module")
    return save_dir(path, lambda tmp: _write_module(module, params, tmp), "rl_module")


# ----------------------------------------------------------------------------- reading
def _validate_metadata(meta: Any, where: str) -> dict:
    if not isinstance(meta, dict):
        _bad(where, "a JSON object", meta)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{where}: expected format {FORMAT!r}, got {meta.get('format')!r}")
    kind = meta.get("kind")
    if kind not in ("rl_module", "multi_rl_module"):
        raise ValueError(f"{where}: 'kind' must be 'rl_module' or 'multi_rl_module'; got {kind!r}")
    required = {"module_class": str, "inference_only": bool}
    required.update({"module_ids": list} if kind == "multi_rl_module" else
                    {"observation_space": (dict, type(None)), "action_space": (dict, type(None)), "params": dict})
    for key, types in required.items():
        if key not in meta:
            raise ValueError(f"{where} lacks the key {key!r} (expected keys: {sorted(required)}); it has {sorted(meta)}")
        if not isinstance(meta[key], types):
            kinds = types if isinstance(types, tuple) else (types,)
            names = " or ".join("null" if t is type(None) else t.__name__ for t in kinds)
            _bad(f"{where} key {key!r}", f"a {names}", meta[key])
    if ":" not in meta["module_class"]:
        _bad(f"{where} key 'module_class'", "an import path 'package.module:ClassName'", meta["module_class"])
    if kind == "multi_rl_module":
        ids = meta["module_ids"]
        if not all(isinstance(i, str) and i and "/" not in i and i not in (".", "..") for i in ids) or len(set(ids)) != len(ids):
            _bad(f"{where} key 'module_ids'", "a list of distinct ModuleID strings (directory names)", ids)
        return meta
    for key, entry in meta["params"].items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list) and isinstance(entry[1], str)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry[0])):
            _bad(f"{where} params[{key!r}]", "[shape as a list of non-negative ints, dtype string]", entry)
    return meta


def read_metadata(path: Any) -> dict:
    path = Path(path_text(path))
    if not path.is_dir():
        what = "nothing" if not os.path.lexists(path) else "a file"
        raise ValueError(f"No checkpoint directory at {str(path)!r}: expected a checkpoint directory, found {what}")
    meta_file = path / "metadata.json"
    if not meta_file.is_file():
        raise ValueError(f"{str(path)!r} is not a jaxrl_modules checkpoint: metadata.json is missing "
                         f"(expected metadata.json, found {sorted(os.listdir(path))[:8]})")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"Corrupt checkpoint {str(path)!r}: metadata.json is not valid JSON ({err})") from None
    return _validate_metadata(meta, f"Checkpoint file {str(meta_file)!r}")


def _load_class(path: Path, meta: dict) -> tuple[type, Any]:
    """The module class and config: the class from `module_class` when it imports, else from
    class.pkl; the config from class.pkl when it unpickles (it keeps callables), else the JSON."""
    pickled, pickle_problem = None, "class.pkl is missing"
    if (path / "class.pkl").is_file():
        try:
            with open(path / "class.pkl", "rb") as f:
                pickled = cloudpickle.load(f)
            if not isinstance(pickled, dict):
                pickled, pickle_problem = None, f"class.pkl holds a {type(pickled).__name__}, not a dict"
        except _UNPICKLE_ERRORS as err:
            pickle_problem = f"class.pkl cannot be unpickled ({type(err).__name__}: {err})"
    try:
        cls = import_class(meta["module_class"])
    except (ImportError, AttributeError, ValueError) as err:
        cls = pickled.get("class") if pickled else None
        if not isinstance(cls, type):
            raise ValueError(f"Cannot load checkpoint {str(path)!r}: metadata.json's module_class {meta['module_class']!r} "
                             f"does not import ({type(err).__name__}: {err}) and {pickle_problem}") from None
    if not isinstance(cls, type):
        _bad(f"metadata.json module_class of {str(path)!r}", "a class", cls)
    where = f"Checkpoint file {str(path / 'metadata.json')!r} key 'model_config'"
    if pickled and "model_config" in pickled:
        return cls, pickled["model_config"]
    config_cls = getattr(cls, "model_config_class", DefaultModelConfig)
    if not (isinstance(config_cls, type) and issubclass(config_cls, DefaultModelConfig)):
        config_cls = DefaultModelConfig
    return cls, _config_from_json(meta.get("model_config"), where, config_cls)


def _restore_tree(path: Path, abstract: Any) -> Any:
    import orbax.checkpoint as ocp

    target = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract)
    try:
        with ocp.StandardCheckpointer(multiprocessing_options=orbax_this_process()) as ckptr:
            restored = ckptr.restore(path / "params", target)
    except _ORBAX_ERRORS as err:
        raise ValueError(f"Corrupt checkpoint {str(path)!r}: cannot read params/ ({type(err).__name__}: {err})") from None
    _compare(tree_spec(abstract), tree_spec(restored), f"Checkpoint {str(path / 'params')!r}")
    return restored


def _restore_params(module: Any, path: Path, module_id: Optional[str] = None, expected: Any = None) -> Any:
    meta = read_metadata(path)
    if module.is_multi_rl_module:
        abstract = abstract_params(module) if expected is None else expected
        if module_id is not None:
            if module_id not in module.keys():
                raise ValueError(f"Unknown ModuleID {module_id!r}; expected one of {sorted(module.keys())}")
            return _restore_params(module[module_id], path / module_id, expected=abstract[module_id])
        if meta["kind"] != "multi_rl_module":
            raise ValueError(f"{str(path)!r} holds a single RLModule checkpoint; this is a MultiRLModule")
        ids = meta["module_ids"]
        if sorted(ids) != sorted(module.keys()):
            raise ValueError(f"Checkpoint {str(path)!r} holds ModuleIDs {sorted(ids)}; the module has {sorted(module.keys())}")
        return {mid: _restore_params(module[mid], path / mid, expected=abstract[mid]) for mid in module.keys()}
    if meta["kind"] != "rl_module":
        raise ValueError(f"{str(path)!r} holds a MultiRLModule checkpoint; restore it into a MultiRLModule "
                         "or pass the sub-directory of one ModuleID")
    stored_cls = meta["module_class"]
    if stored_cls != class_path(type(module)) and not stored_cls.endswith(":" + type(module).__qualname__):
        raise ValueError(f"Checkpoint {str(path)!r} holds a {stored_cls}; the module is a {class_path(type(module))}")
    abstract = abstract_params(module) if expected is None else expected
    _compare(tree_spec(abstract), meta["params"], f"Checkpoint {str(path / 'metadata.json')!r}")
    return _restore_tree(path, abstract)


def restore_params(module: Any, path: Any, module_id: Optional[str] = None, expected: Any = None) -> Any:
    """Strictly restores params for `module` (or one ModuleID of a MultiRLModule)."""
    path = Path(path_text(path)).absolute()
    return read_consistently(path, lambda: _restore_params(module, path, module_id, expected), save_id)


def _rebuild(cls: type, where: str, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Cannot rebuild a {cls.__name__} from {where}: {type(err).__name__}: {err}") from None


def _load_module(path: Path, expected_cls: Optional[type]) -> tuple[Any, Any]:
    meta = read_metadata(path)
    cls, config = _load_class(path, meta)
    if expected_cls is not None and not issubclass(cls, expected_cls):
        raise ValueError(f"Checkpoint {str(path)!r} holds a {cls.__name__}, not a {expected_cls.__name__}")
    where = f"checkpoint file {str(path / 'metadata.json')!r}"
    if meta["kind"] == "multi_rl_module":
        specs = {}
        for mid in meta["module_ids"]:
            sub_meta = read_metadata(path / mid)
            sub_cls, sub_config = _load_class(path / mid, sub_meta)
            sub_file = str(path / mid / "metadata.json")
            specs[mid] = RLModuleSpec(sub_cls, space_from_json(sub_meta["observation_space"], f"{sub_file} observation_space"),
                                      space_from_json(sub_meta["action_space"], f"{sub_file} action_space"),
                                      sub_meta["inference_only"], model_config=sub_config)
        module = _rebuild(cls, where, inference_only=meta["inference_only"], model_config=config, rl_module_specs=specs)
    else:
        file = str(path / "metadata.json")
        module = _rebuild(cls, where, observation_space=space_from_json(meta["observation_space"], f"{file} observation_space"),
                          action_space=space_from_json(meta["action_space"], f"{file} action_space"),
                          inference_only=meta["inference_only"], model_config=config)
    return module, _restore_params(module, path)


def load_module(path: Any, expected_cls: Optional[type] = None) -> tuple[Any, Any]:
    """Rebuilds `(module, params)` from a checkpoint (single or multi)."""
    path = Path(path_text(path)).absolute()
    return read_consistently(path, lambda: _load_module(path, expected_cls), save_id)
