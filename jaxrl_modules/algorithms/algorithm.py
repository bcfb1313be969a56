"""Algorithm: the stateful shell around pure training functions (RLlib's `Algorithm`).

It builds the module from the config and the env's spaces, holds the learner state, the
RNG and counters, and offers train / evaluate / get_module / get_params / save / restore.
"""

from __future__ import annotations

import importlib
import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np

from jaxrl_modules.algorithms.state_io import STATE_FORMAT, check_index, read_state, save_state, state_meta
from jaxrl_modules.columns import DEFAULT_MODULE_ID

COMPONENT_PREFIX = "learner_group/learner/rl_module"


def _on_process_0(write: Any, elsewhere: Any) -> Any:
    """`write()` on process 0 (the only process without jax.distributed); every process waits for it and
    raises when it failed. Returns `write()`'s result on process 0, `elsewhere` on the others."""
    from jaxrl_modules.distributed import any_process, is_primary

    result, error = elsewhere, None
    if is_primary():
        try:
            result = write()
        except BaseException as err:  # re-raised below, after the other processes have heard of it
            error = err
    if any_process(error is not None):
        if error is not None:
            raise error
        raise RuntimeError(f"process 0 could not write the checkpoint ({elsewhere}); see its error")
    return result


def _bad(where: str, expected: str, got: Any) -> None:
    raise ValueError(f"{where} must be {expected}; got {got!r} ({type(got).__name__})")


def read_json_object(file: Path, where: str) -> dict:
    """The JSON object in `file`; a ValueError starting with `where` when it is not valid JSON or not an object."""
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{where} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        _bad(where, "a JSON object", data)
    return data


def _read_algorithm_json(path: Path) -> dict:
    """algorithm.json, checked: a ValueError naming the file and what is wrong."""
    meta_file = path / "algorithm.json"
    if not path.is_dir():
        raise ValueError(f"No algorithm checkpoint at {str(path)!r}: expected a directory, found "
                         f"{'nothing' if not path.exists() else 'a file'}")
    if not meta_file.is_file():
        raise ValueError(f"{str(path)!r} is not an algorithm checkpoint: algorithm.json is missing "
                         f"(found {sorted(p.name for p in path.iterdir())[:8]})")
    where = f"Checkpoint file {str(meta_file)!r}"
    meta = read_json_object(meta_file, where)
    for key, ok, expected in (("algorithm", lambda v: isinstance(v, str), "a str"),
                              ("iteration", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int >= 0"),
                              ("num_leaves", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int >= 0")):
        if key not in meta:
            raise ValueError(f"{where} lacks the key {key!r} (expected algorithm, iteration, num_leaves); it has {sorted(meta)}")
        if not ok(meta[key]):
            _bad(f"{where} key {key!r}", expected, meta[key])
    state = meta.get("state")
    if state is not None:
        if not isinstance(state, dict) or len(state) != meta["num_leaves"]:
            _bad(f"{where} key 'state'", f"a dict of {meta['num_leaves']} (num_leaves) state array descriptions", state)
        for key, entry in state.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("shape"), list) and isinstance(entry.get("dtype"), str)
                    and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry["shape"])):
                _bad(f"{where} state[{key!r}]", "{'shape': [non-negative ints], 'dtype': str}", entry)
    if "state_format" in meta and meta["state_format"] != STATE_FORMAT:  # absent: the old leaf_NNNNN layout
        _bad(f"{where} key 'state_format'", f"{STATE_FORMAT!r} (or absent in older checkpoints)", meta["state_format"])
    if "env" in meta:
        _check_env_entry(meta["env"], where)
    _check_carried_returns(meta, where)
    return meta


def _is_return(value: Any) -> bool:
    """A carried return as algorithm.json holds it: a finite number, or null (no episode had ended)."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _check_carried_returns(meta: dict, where: str) -> None:
    """algorithm.json's "episode_return_mean" and (multi-agent) "module_episode_returns_mean", both absent in
    checkpoints written before they existed: a ValueError naming what is wrong."""
    if "episode_return_mean" in meta and not _is_return(meta["episode_return_mean"]):
        _bad(f"{where} key 'episode_return_mean'", "a finite number or null", meta["episode_return_mean"])
    per_module = meta.get("module_episode_returns_mean")
    if per_module is not None and not (isinstance(per_module, dict) and all(_is_return(x) for x in per_module.values())):
        _bad(f"{where} key 'module_episode_returns_mean'", "null or a dict {module_id: a finite number or null}", per_module)


def _json_return(value: float) -> Optional[float]:
    return float(value) if np.isfinite(value) else None


def _carried(value: Any) -> float:
    return float("nan") if value is None else float(value)


def import_path(obj: Any) -> Optional[str]:
    """`"module:qualname"` of a class or function that importing gives back (the same object), else None."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None  # a lambda or a local class
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is obj else None


def _json_or_none(value: Any) -> tuple[Any, Optional[str]]:
    """`(value, None)` when `value` is JSON as it is, else `(None, repr)`."""
    try:
        if json.loads(json.dumps(value, allow_nan=False)) == value:
            return value, None
    except (TypeError, ValueError):
        pass
    return None, repr(value)[:200]


ENV_KEYS = ("id", "creator", "env_config", "normalize_actions", "clip_actions", "connector", "multi_agent", "agent_to_module")


def _check_env_entry(env: Any, where: str) -> None:
    """algorithm.json's "env" (absent in checkpoints written before it existed): a ValueError naming what is wrong."""
    expected = ("a dict with id (str or null), creator (str or null), env_config (dict or null), normalize_actions, "
                "clip_actions, multi_agent (bools), connector (null or {class, path}), agent_to_module (null or [[agent, "
                "module_id], ...])")
    if not isinstance(env, dict) or any(k not in env for k in ENV_KEYS):
        _bad(f"{where} key 'env'", expected, env)
    ok = (all(env[k] is None or isinstance(env[k], str) for k in ("id", "creator"))
          and (env["env_config"] is None or isinstance(env["env_config"], dict))
          and all(isinstance(env[k], bool) for k in ("normalize_actions", "clip_actions", "multi_agent"))
          and (env["connector"] is None or (isinstance(env["connector"], dict) and {"class", "path"} <= set(env["connector"])))
          and (env["agent_to_module"] is None or (isinstance(env["agent_to_module"], list) and all(
              isinstance(p, list) and len(p) == 2 and isinstance(p[1], str) for p in env["agent_to_module"]))))
    if not ok:
        _bad(f"{where} key 'env'", expected, env)


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

    def _evaluation_episodes(self, episodes: Any) -> int:
        """How many episodes `evaluate(episodes)` runs: `episodes` (an int >= 1), or the config's
        `evaluation_duration` when None."""
        from jaxrl_modules import validation as v

        return int(self.config.evaluation_duration) if episodes is None else v.positive_int("episodes", episodes)

    @staticmethod
    def _evaluation_result(returns: list, episodes: int) -> dict:
        """`evaluate()`'s result for the returns of `episodes` complete episodes."""
        if len(returns) != episodes:
            raise RuntimeError(f"evaluation ran {len(returns)} episodes; expected {episodes}")
        return {"env_runners": {"episode_return_mean": float(np.mean(returns)), "num_episodes": len(returns),
                                "episode_returns": returns}}

    def get_module(self, module_id: Optional[str] = None) -> Any:
        """The module of `module_id`; without one, the whole module (a MultiRLModule when multi-agent)."""
        from jaxrl_modules.multi_rl_module import MultiRLModule

        if isinstance(self.module, MultiRLModule):
            return self.module if module_id is None else self.module[module_id]
        if module_id not in (DEFAULT_MODULE_ID, None):
            raise KeyError(f"Module ID {module_id!r} not found; this algorithm has {DEFAULT_MODULE_ID!r}")
        return self.module

    def get_params(self, module_id: Optional[str] = None) -> Any:
        """A snapshot of the params (later training does not change it)."""
        self.get_module(module_id)  # an unknown ModuleID raises as get_module does
        params = self._params()
        if module_id is not None and self._is_multi():
            params = params[module_id]
        return jax.tree_util.tree_map(lambda x: np.array(x), params)

    def _is_multi(self) -> bool:
        from jaxrl_modules.multi_rl_module import MultiRLModule

        return isinstance(self.module, MultiRLModule)

    def save_to_path(self, path: Any) -> str:
        """Everything to resume: params, optimizer state, RNG, counters (and, all-in-jit, env state),
        plus a module checkpoint under `learner_group/learner/rl_module/<module_id>`. Saved as
        safely and atomically as a module checkpoint (`jaxrl_modules.atomic_dir`).

        In a multi-process run (`jax.distributed`) every process must call it: the state is gathered
        from all of them and process 0 alone writes; every process returns once it is written, or
        raises when process 0 could not write it."""
        from jaxrl_modules.checkpoint import save_dir

        write = self._checkpoint_writer()
        return _on_process_0(lambda: save_dir(path, write, "algorithm"), str(Path(path).expanduser().absolute()))

    def write_checkpoint(self, directory: Any) -> None:
        """Writes the checkpoint `save_to_path` writes into `directory`, an existing empty folder
        that the caller manages (e.g. an orbax `CheckpointManager` step); no atomic swap."""
        directory = Path(directory)
        if not directory.is_dir() or any(directory.iterdir()):
            raise ValueError(f"write_checkpoint needs an existing empty directory; got {str(directory)!r}")
        write = self._checkpoint_writer()
        _on_process_0(lambda: write(directory), None)

    def _checkpoint_writer(self) -> Any:
        """A function of a folder that writes this algorithm's checkpoint into it (state captured now)."""
        from jaxrl_modules.atomic_dir import new_save_id
        from jaxrl_modules.checkpoint import _write_json, _write_module, check_params
        from jaxrl_modules.distributed import host_values

        params = host_values(self._params())  # a multi-process run's arrays gathered from every process
        check_params(self.module, params)
        state = host_values(self._state())
        env = self.env_entry()
        carried = self._carried_returns()

        def write(tmp: Path) -> None:
            save_state(tmp, state)
            modules = self.module.items() if self._is_multi() else [(DEFAULT_MODULE_ID, self.module)]
            for mid, sub in modules:
                target = tmp / COMPONENT_PREFIX / mid
                target.mkdir(parents=True)
                _write_module(sub, params[mid] if self._is_multi() else params, target)
            _write_json(tmp / "algorithm.json", {"algorithm": type(self).__name__, "iteration": self.iteration,
                                                 "save_id": new_save_id(), **state_meta(state), "env": env, **carried})

        return write

    def _carried_returns(self) -> dict:
        """The carried `episode_return_mean` (the last iteration's with an ended episode; null before the
        first) as algorithm.json records it, plus `module_episode_returns_mean` per module when multi-agent,
        so a restored algorithm reports it in iterations where no episode ends, as the saved one would."""
        out: dict = {}
        returns = getattr(self, "_returns", None)
        if returns is not None:
            out["episode_return_mean"] = _json_return(returns.last)
        modules = getattr(self, "_module_returns", None)
        if modules is not None:
            out["module_episode_returns_mean"] = {str(mid): _json_return(r.last) for mid, r in modules.items()}
        return out

    def _set_carried_returns(self, meta: dict) -> None:
        """Restores what `_carried_returns` wrote (NaN where the checkpoint has none: older checkpoints)."""
        from jaxrl_modules.algorithms.env_runner import EpisodeReturns

        def carried(value: Any) -> EpisodeReturns:
            returns = EpisodeReturns()
            returns.last = _carried(value)
            return returns

        if getattr(self, "_returns", None) is not None:
            self._returns = carried(meta.get("episode_return_mean"))
        modules = getattr(self, "_module_returns", None)
        if modules is not None:
            stored = meta.get("module_episode_returns_mean") or {}
            self._module_returns = {mid: carried(stored.get(str(mid))) for mid in modules}

    def env_entry(self) -> dict:
        """How to rebuild this algorithm's env, as algorithm.json's "env" records it: `id` (a string id),
        `creator` (the import path of an env class or creator, or of the creator `register_env` holds
        for `id`; null when not importable), `env_config` (null with `env_config_repr` when not JSON),
        `normalize_actions`, `clip_actions`, `connector` (null, or `{"class", "path"}` of the
        env-to-module connector built; path null when not importable), `multi_agent` and
        `agent_to_module` (multi-agent: `[[agent, module_id], ...]` for the env's agents in episode 0)."""
        from jaxrl_modules.envs.registry import _ENV_CREATORS

        cfg = self.config
        env_id = cfg.env if isinstance(cfg.env, str) else None
        creator = _ENV_CREATORS.get(env_id) if env_id is not None else cfg.env
        env_config, env_config_repr = _json_or_none(dict(cfg.env_config))
        entry: dict = {"id": env_id, "creator": import_path(creator) if creator is not None else None,
                       "env_config": env_config, "normalize_actions": bool(cfg.normalize_actions),
                       "clip_actions": bool(cfg.clip_actions), "connector": None, "multi_agent": False,
                       "agent_to_module": None}
        if env_config_repr is not None:
            entry["env_config_repr"] = env_config_repr
        info = self._env_info()
        if cfg.env_to_module_connector is not None:
            cls = type(info["connector"]) if info["connector"] is not None else None
            entry["connector"] = {"class": cls.__name__ if cls else None, "path": import_path(cls) if cls else None}
        if info["agent_to_module"] is not None:
            pairs = info["agent_to_module"]
            entry["multi_agent"] = True
            entry["agent_to_module"] = pairs if _json_or_none(pairs)[1] is None else None
        return entry

    def _env_info(self) -> dict:
        """What `env_entry` records of the built env: `{"connector": the env-to-module connector or None,
        "agent_to_module": [[agent, module_id], ...] (multi-agent) or None}`; an algorithm whose loop builds
        a connector or a multi-agent env says so (`DrivenAlgorithm` asks its driver)."""
        return {"connector": None, "agent_to_module": None}

    def restore_from_path(self, path: Any, component: Optional[str] = None) -> None:
        """Restores a whole algorithm checkpoint, or with `component=
        "learner_group/learner/rl_module/<module_id>"` loads a module checkpoint (at `path`)
        into that module of the running algorithm."""
        from jaxrl_modules.atomic_dir import path_text, read_consistently
        from jaxrl_modules.checkpoint import restore_params, save_id

        path = Path(path_text(path)).absolute()
        if component is not None:
            prefix = COMPONENT_PREFIX + "/"
            if not isinstance(component, str) or not component.startswith(prefix):
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
        state, iteration, meta = read_consistently(path, lambda: self._read_state(path), save_id)
        self._set_state(state)
        self.iteration = iteration
        self._set_carried_returns(meta)

    def _read_state(self, path: Path) -> tuple[Any, int, dict]:
        """The state, iteration and algorithm.json of the checkpoint at `path`, every array checked
        against this algorithm's state (`state_io`; old `leaf_NNNNN` checkpoints too)."""
        meta = _read_algorithm_json(path)
        if meta["algorithm"] != type(self).__name__:
            raise ValueError(f"Checkpoint {str(path)!r} is of a {meta['algorithm']}; this is a {type(self).__name__}")
        like = self._state()
        legacy = check_index(meta, like, f"Checkpoint file {str(path / 'algorithm.json')!r}")
        return read_state(path, like, legacy), meta["iteration"], meta

    def stop(self) -> None:
        """Closes envs."""
