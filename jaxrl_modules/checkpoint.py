"""Module checkpoints: params through orbax-checkpoint plus a JSON metadata file.

Layout of a single-module checkpoint directory:
    metadata.json   class import path, spaces, model config, inference_only, version,
                    and every param leaf's path, shape and dtype
    params/         the orbax checkpoint of the params pytree
    class.pkl       cloudpickle of the class and config, a fallback for classes defined in
                    notebooks or test files that cannot be imported by path
A MultiRLModule checkpoint has its own metadata.json and one such directory per ModuleID.
Saving writes to a temporary sibling directory and renames it: a crash leaves no half
checkpoint. Restores are strict: class, tree, every shape and dtype must match.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Optional

import cloudpickle
import jax
import numpy as np

from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.serialization import space_from_json, space_to_json

FORMAT = "jaxrl_modules.checkpoint/1"


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


def _config_from_json(data: Any) -> Any:
    if isinstance(data, dict) and "__DefaultModelConfig__" in data:
        return DefaultModelConfig(**data["__DefaultModelConfig__"])
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


def tree_spec(params: Any) -> dict:
    """`{leaf path: [shape, dtype]}` of a (possibly abstract) params pytree, in tree order."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(p): [list(x.shape), str(x.dtype)] for p, x in flat}


def _atomic_dir(path: Path, write: Any) -> str:
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        write(tmp)
        if path.exists():
            trash = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return str(path)


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _module_metadata(module: Any, params: Any) -> dict:
    from jaxrl_modules import __version__

    return {
        "format": FORMAT, "kind": "rl_module", "module_class": class_path(type(module)),
        "observation_space": space_to_json(module.observation_space),
        "action_space": space_to_json(module.action_space),
        "inference_only": bool(module.inference_only), "model_config": _config_to_json(module.model_config),
        "library_version": __version__, "params": tree_spec(params),
    }


def _write_module(module: Any, params: Any, directory: Path) -> None:
    import orbax.checkpoint as ocp

    params = jax.device_get(params)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory / "params", params)
        ckptr.wait_until_finished()
    with open(directory / "class.pkl", "wb") as f:
        cloudpickle.dump({"class": type(module), "model_config": module.model_config}, f)
    _write_json(directory / "metadata.json", _module_metadata(module, params))


def save_module(module: Any, params: Any, path: Any) -> str:
    """Saves a module (or MultiRLModule) and its params atomically; returns the path."""
    from jaxrl_modules.multi_rl_module import MultiRLModule

    if isinstance(module, MultiRLModule):
        missing = [mid for mid in module.keys() if mid not in params]
        if missing:
            raise ValueError(f"params lack ModuleID(s) {missing}; params have {sorted(params)}")

        def write(tmp: Path) -> None:
            for mid, sub in module.items():
                (tmp / mid).mkdir()
                _write_module(sub, params[mid], tmp / mid)
            from jaxrl_modules import __version__

            with open(tmp / "class.pkl", "wb") as f:
                cloudpickle.dump({"class": type(module)}, f)
            _write_json(tmp / "metadata.json", {
                "format": FORMAT, "kind": "multi_rl_module", "module_class": class_path(type(module)),
                "module_ids": list(module.keys()), "inference_only": bool(module.inference_only),
                "model_config": _config_to_json(module.model_config), "library_version": __version__})

        return _atomic_dir(Path(path), write)
    return _atomic_dir(Path(path), lambda tmp: _write_module(module, params, tmp))


def read_metadata(path: Any) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"No checkpoint directory at {str(path)!r}")
    meta_file = path / "metadata.json"
    if not meta_file.is_file():
        raise ValueError(f"{str(path)!r} is not a jaxrl_modules checkpoint: metadata.json is missing")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"Corrupt checkpoint {str(path)!r}: metadata.json is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise ValueError(f"Corrupt checkpoint {str(path)!r}: expected format {FORMAT!r}, got {got!r}")
    return meta


def _load_class(path: Path, meta: dict) -> tuple[type, Any]:
    pickled = None
    if (path / "class.pkl").is_file():
        with open(path / "class.pkl", "rb") as f:
            pickled = cloudpickle.load(f)
    try:
        cls = import_class(meta["module_class"])
    except (ImportError, AttributeError):
        if pickled is None:
            raise ValueError(f"Cannot import module class {meta['module_class']!r} of checkpoint {str(path)!r}") from None
        cls = pickled["class"]
    config = pickled.get("model_config") if pickled and "model_config" in pickled else _config_from_json(meta.get("model_config"))
    return cls, config


def _compare(expected: dict, stored: dict, where: str) -> None:
    for key, (shape, dtype) in expected.items():
        if key not in stored:
            raise ValueError(f"Checkpoint {where} does not match the module: leaf params{key} with shape "
                             f"{tuple(shape)} is missing from the checkpoint")
        s_shape, s_dtype = stored[key]
        if list(s_shape) != list(shape) or s_dtype != dtype:
            raise ValueError(f"Checkpoint {where} does not match the module at leaf params{key}: checkpoint has "
                             f"shape {tuple(s_shape)} {s_dtype}, the module expects shape {tuple(shape)} {dtype}")
    extra = [k for k in stored if k not in expected]
    if extra:
        raise ValueError(f"Checkpoint {where} does not match the module: leaf params{extra[0]} with shape "
                         f"{tuple(stored[extra[0]][0])} is not part of the module")


def _restore_tree(path: Path, abstract: Any) -> Any:
    import orbax.checkpoint as ocp

    target = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract)
    try:
        with ocp.StandardCheckpointer() as ckptr:
            restored = ckptr.restore(path / "params", target)
    except Exception as err:  # orbax raises many types for unreadable data
        raise ValueError(f"Corrupt checkpoint {str(path)!r}: cannot read params ({type(err).__name__}: {err})") from None
    _compare(tree_spec(abstract), tree_spec(restored), repr(str(path)))
    return restored


def restore_params(module: Any, path: Any, module_id: Optional[str] = None, expected: Any = None) -> Any:
    """Strictly restores params for `module` (or one ModuleID of a MultiRLModule)."""
    from jaxrl_modules.multi_rl_module import MultiRLModule

    path = Path(path).absolute()
    meta = read_metadata(path)
    if isinstance(module, MultiRLModule):
        abstract = jax.eval_shape(module.init_fn, jax.random.key(0)) if expected is None else expected
        if module_id is not None:
            return restore_params(module[module_id], path / module_id, expected=abstract[module_id])
        if meta.get("kind") != "multi_rl_module":
            raise ValueError(f"{str(path)!r} holds a single RLModule checkpoint; this is a MultiRLModule")
        ids = meta["module_ids"]
        if sorted(ids) != sorted(module.keys()):
            raise ValueError(f"Checkpoint {str(path)!r} holds ModuleIDs {sorted(ids)}; the module has {sorted(module.keys())}")
        return {mid: restore_params(module[mid], path / mid, expected=abstract[mid]) for mid in module.keys()}
    if meta.get("kind") != "rl_module":
        raise ValueError(f"{str(path)!r} holds a MultiRLModule checkpoint; restore it into a MultiRLModule "
                         "or pass the sub-directory of one ModuleID")
    stored_cls = meta["module_class"]
    if stored_cls != class_path(type(module)) and not stored_cls.endswith(":" + type(module).__qualname__):
        raise ValueError(f"Checkpoint {str(path)!r} holds a {stored_cls}; the module is a {class_path(type(module))}")
    abstract = jax.eval_shape(module.init_fn, jax.random.key(0)) if expected is None else expected
    _compare(tree_spec(abstract), meta["params"], repr(str(path)))
    return _restore_tree(path, abstract)


def load_module(path: Any, expected_cls: Optional[type] = None) -> tuple[Any, Any]:
    """Rebuilds `(module, params)` from a checkpoint (single or multi)."""
    path = Path(path).absolute()
    meta = read_metadata(path)
    cls, config = _load_class(path, meta)
    if expected_cls is not None and not issubclass(cls, expected_cls):
        raise ValueError(f"Checkpoint {str(path)!r} holds a {cls.__name__}, not a {expected_cls.__name__}")
    if meta["kind"] == "multi_rl_module":
        from jaxrl_modules.rl_module_spec import RLModuleSpec

        specs = {}
        for mid in meta["module_ids"]:
            sub_meta = read_metadata(path / mid)
            sub_cls, sub_config = _load_class(path / mid, sub_meta)
            specs[mid] = RLModuleSpec(sub_cls, space_from_json(sub_meta["observation_space"]),
                                      space_from_json(sub_meta["action_space"]), sub_meta["inference_only"],
                                      model_config=sub_config)
        module = cls(inference_only=meta["inference_only"], model_config=config, rl_module_specs=specs)
    else:
        module = cls(observation_space=space_from_json(meta["observation_space"]),
                     action_space=space_from_json(meta["action_space"]),
                     inference_only=meta["inference_only"], model_config=config)
    return module, restore_params(module, path)
