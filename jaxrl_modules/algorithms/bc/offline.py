"""Recorded transitions for offline learning: write them from a policy rollout, read them back.

A dataset is a `.npz` file (or a directory of them) with the columns obs, actions, rewards,
terminateds, truncateds and new_obs, each with a leading transition axis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrl_modules.algorithms.action_transform import make_env_action_fn
from jaxrl_modules.envs.registry import make_env
from jaxrl_modules.columns import Columns

COLUMNS = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.TERMINATEDS, Columns.TRUNCATEDS, Columns.NEXT_OBS)


def record_transitions(module: Any, params: Any, env: Any, num_steps: int, path: Any, *, env_config: dict | None = None,
                       explore: bool = False, seed: int = 0, normalize_actions: bool = True,
                       clip_actions: bool = False) -> dict:
    """Rolls `module` out for `num_steps` env steps (deterministic unless `explore`), writes
    the transitions to `path` (.npz) and returns `{"path", "episode_returns"}`. The env receives
    the module's actions as `environment(normalize_actions=, clip_actions=)` say; the file stores
    the module's actions (as an algorithm's training batch does). A `path` without the `.npz`
    suffix gets it (as `np.savez` does); the returned path is the file written."""
    from jaxrl_modules.validation import boolean, positive_int, seed_int

    num_steps = positive_int("record_transitions num_steps", num_steps)
    seed = seed_int("record_transitions seed", seed)
    explore, normalize_actions, clip_actions = (boolean()(f"record_transitions {name}", value) for name, value in (
        ("explore", explore), ("normalize_actions", normalize_actions), ("clip_actions", clip_actions)))
    path = Path(os.path.expanduser(os.fspath(path)))
    if path.is_dir():
        raise ValueError(f"record_transitions path {str(path)!r} is a directory; expected a .npz file path to write, "
                         f"such as {str(path / 'transitions.npz')!r}")
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    env = make_env(env, env_config or {})
    to_env = make_env_action_fn(env.action_space, normalize_actions, clip_actions)
    fn = module.phase_fn("exploration" if explore else "inference")
    act = jax.jit(lambda p, o, k: fn(p, {Columns.OBS: o}, k)[Columns.ACTIONS])
    cols: dict = {k: [] for k in COLUMNS}
    returns, ret = [], 0.0
    obs, _ = env.reset(seed=seed)
    for t in range(num_steps):
        action = np.asarray(act(params, np.asarray(obs, np.float32)[None], jax.random.key(seed * 1_000_003 + t)))[0]
        next_obs, reward, term, trunc, _ = env.step(to_env(action))
        for key, value in zip(COLUMNS, (obs, action, reward, term, trunc, next_obs)):
            cols[key].append(np.asarray(value))
        ret += float(reward)
        obs = next_obs
        if term or trunc:
            returns.append(ret)
            ret = 0.0
            obs, _ = env.reset()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.stack(v) for k, v in cols.items()})
    return {"path": str(path), "episode_returns": returns}


REQUIRED = (Columns.OBS, Columns.ACTIONS)
_NUMERIC = "fiu"  # numpy dtype kinds of float, int and uint columns
_KINDS = {Columns.OBS: _NUMERIC, Columns.NEXT_OBS: _NUMERIC, Columns.ACTIONS: _NUMERIC, Columns.REWARDS: _NUMERIC,
          Columns.TERMINATEDS: "biu", Columns.TRUNCATEDS: "biu"}
_KIND_NAMES = {"f": "float", "i": "int", "u": "uint", "b": "bool"}


class Transitions(dict):
    """The columns of a dataset (a plain dict), plus `sources`: `[(file, first_row, stop_row)]`."""

    sources: list = []


def _kind_name(kinds: str) -> str:
    return " or ".join(_KIND_NAMES[k] for k in kinds)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[0])


def _read_npz(f: Path) -> dict:
    import pickle
    import zipfile

    try:
        data = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise ValueError(f"{str(f)!r} is not a .npz archive of recorded transitions "
                         f"(expected np.savez output; {type(err).__name__}: {err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{str(f)!r} is not a .npz archive of recorded transitions: it holds a single "
                         f"{type(data).__name__} (expected np.savez output with columns {list(COLUMNS)})")
    with data:
        try:
            return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{str(f)!r} is a corrupt .npz archive ({type(err).__name__}: {err})") from None


def _check_file(f: Path, cols: dict, first: dict | None) -> None:
    """Structure of one file: required columns, kinds, equal lengths, finite values, and the
    same trailing shapes and dtypes as the first file."""
    name = repr(str(f))
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; expected at least {list(REQUIRED)}; it has {sorted(cols)}")
    for key, x in cols.items():
        kinds = _KINDS.get(key)
        if kinds is not None and x.dtype.kind not in kinds:
            raise ValueError(f"{name}: column {key!r} has dtype {x.dtype}; expected {_kind_name(kinds)} values")
        if x.ndim == 0:
            raise ValueError(f"{name}: column {key!r} is a scalar; expected an array with a leading transition axis")
    n = len(cols[Columns.OBS])
    if n == 0:
        raise ValueError(f"{name} holds no transitions: column {Columns.OBS!r} has shape {cols[Columns.OBS].shape}")
    for key, x in cols.items():
        if len(x) != n:
            raise ValueError(f"{name}: column {key!r} has {len(x)} rows; expected {n}, the number of {Columns.OBS!r} rows")
    for key in (Columns.OBS, Columns.NEXT_OBS, Columns.ACTIONS, Columns.REWARDS):
        x = cols.get(key)
        if x is not None and x.dtype.kind == "f" and not np.isfinite(x).all():
            row = _first_bad(~np.isfinite(x))
            raise ValueError(f"{name}: column {key!r} has non-finite values (first at row {row}: {x[row].tolist()}); "
                             "expected finite numbers")
    if first is not None:
        ref_file, ref = first["file"], first["cols"]
        if sorted(ref) != sorted(cols):
            raise ValueError(f"{name} has columns {sorted(cols)}; {ref_file!r} has {sorted(ref)}: every file of a "
                             "dataset needs the same columns")
        for key, x in cols.items():
            if x.shape[1:] != ref[key].shape[1:] or x.dtype.kind != ref[key].dtype.kind:
                raise ValueError(f"{name}: column {key!r} has rows of shape {x.shape[1:]} {x.dtype}; {ref_file!r} has "
                                 f"{ref[key].shape[1:]} {ref[key].dtype}")


def load_transitions(path: Any, observation_space: Any = None, action_space: Any = None) -> Transitions:
    """The columns of a `.npz` file, or of every `.npz` in a directory, concatenated.

    Every file is checked (a ValueError names the file and what is wrong): it is a .npz archive,
    holds at least obs and actions, numeric columns of equal length, finite observations,
    actions and rewards, and the same columns as the other files. With spaces given,
    `check_transitions` also checks observation shapes and that actions lie in the action space.
    """
    path = Path(os.path.expanduser(os.fspath(path)))
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            others = sorted(p.name for p in path.iterdir())
            what = f"holds no .npz files (it has {others[:5]}{' ...' if len(others) > 5 else ''})" if others else "is empty"
            raise ValueError(f"No recorded transitions at {str(path)!r}: the directory {what}; "
                             "expected a .npz file or a directory of them")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"No recorded transitions at {str(path)!r}: nothing exists there; "
                         "expected a .npz file or a directory of them")
    parts, first = [], None
    for f in files:
        cols = _read_npz(f)
        _check_file(f, cols, first)
        first = first or {"file": str(f), "cols": cols}
        parts.append(cols)
    data = Transitions({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    bounds = np.cumsum([0] + [len(p[Columns.OBS]) for p in parts])
    data.sources = [(str(f), int(a), int(b)) for f, a, b in zip(files, bounds[:-1], bounds[1:])]
    if observation_space is not None or action_space is not None:
        check_transitions(data, observation_space, action_space)
    return data


def _source(data: Any, row: int) -> str:
    for f, a, b in getattr(data, "sources", []):
        if a <= row < b:
            return f"{f!r} (row {row - a})"
    return f"the data (row {row})"


def check_transitions(data: Any, observation_space: Any = None, action_space: Any = None) -> None:
    """Observation rows shaped as the observation space; actions shaped as, and (Discrete,
    MultiDiscrete, MultiBinary) inside, the action space. A ValueError names the file and row."""
    import gymnasium as gym

    obs, actions = data[Columns.OBS], data[Columns.ACTIONS]
    if observation_space is not None and getattr(observation_space, "shape", None) is not None:
        if tuple(obs.shape[1:]) != tuple(observation_space.shape):
            raise ValueError(f"{_source(data, 0)}: column {Columns.OBS!r} has rows of shape {obs.shape[1:]}; the "
                             f"observation space {observation_space} expects {tuple(observation_space.shape)}")
    if action_space is None or getattr(action_space, "shape", None) is None:
        return
    if tuple(actions.shape[1:]) != tuple(action_space.shape):
        raise ValueError(f"{_source(data, 0)}: column {Columns.ACTIONS!r} has rows of shape {actions.shape[1:]}; the "
                         f"action space {action_space} expects {tuple(action_space.shape)}")
    if isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        if actions.dtype.kind == "f" and not np.array_equal(actions, np.round(actions)):
            row = _first_bad(actions != np.round(actions))
            raise ValueError(f"{_source(data, row)}: action {actions[row].tolist()} is not a whole number; the action space "
                             f"{action_space} holds integers")
        if isinstance(action_space, gym.spaces.Discrete):
            low, high = int(action_space.start), int(action_space.start) + int(action_space.n) - 1
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            start = np.asarray(getattr(action_space, "start", 0))
            low, high = start, start + action_space.nvec - 1
        else:
            low, high = 0, 1
        bad = (actions < low) | (actions > high)
        if bad.any():
            row = _first_bad(bad)
            raise ValueError(f"{_source(data, row)}: action {actions[row].tolist()} is outside the action space {action_space} "
                             f"(expected values in [{low}, {high}])")
