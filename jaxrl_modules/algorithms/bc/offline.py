"""Recorded transitions for offline learning: write them from a policy rollout, read them back.

A dataset is a `.npz` file (or a directory of them) with the columns obs, actions, rewards,
terminateds, truncateds and new_obs, each with a leading transition axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrl_modules.algorithms.action_transform import make_env_action_fn
from jaxrl_modules.algorithms.registry import make_env
from jaxrl_modules.columns import Columns

COLUMNS = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.TERMINATEDS, Columns.TRUNCATEDS, Columns.NEXT_OBS)


def record_transitions(module: Any, params: Any, env: Any, num_steps: int, path: Any, *, env_config: dict | None = None,
                       explore: bool = False, seed: int = 0, normalize_actions: bool = True,
                       clip_actions: bool = False) -> dict:
    """Rolls `module` out for `num_steps` env steps (deterministic unless `explore`), writes
    the transitions to `path` (.npz) and returns `{"path", "episode_returns"}`. The env receives
    the module's actions as `environment(normalize_actions=, clip_actions=)` say; the file stores
    the module's actions (as an algorithm's training batch does)."""
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.stack(v) for k, v in cols.items()})
    return {"path": str(path), "episode_returns": returns}


def load_transitions(path: Any) -> dict:
    """The columns of a `.npz` file, or of every `.npz` in a directory, concatenated."""
    path = Path(path)
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise ValueError(f"No recorded transitions at {str(path)!r}: expected a .npz file or a directory of them")
    parts = []
    for f in files:
        with np.load(f) as data:
            missing = [c for c in (Columns.OBS, Columns.ACTIONS) if c not in data]
            if missing:
                raise ValueError(f"{str(f)!r} lacks columns {missing}; it has {sorted(data.files)}")
            parts.append({k: data[k] for k in data.files})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
