"""From the module's actions to the env's: RLlib's `normalize_actions` / `clip_actions`.

As in RLlib, a module acts in [-1, 1] on every bounded float Box (component) of the action
space; with `environment(normalize_actions=True)` (the default) the env receives
`low + (a + 1) * (high - low) / 2`, clipped to [low, high]. With `normalize_actions=False,
clip_actions=True` the env receives the module's action clipped to [low, high]; with both off
it receives the module's action unchanged. Unbounded Box components, Discrete and MultiDiscrete
actions pass through (the distributions already act inside those spaces). The stored training
batch keeps the module's actions.

Pure functions over (nested) actions and spaces; NumPy in the host loops, jnp under `jax.jit`.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np


def _xp(a: Any) -> Any:
    return jnp if isinstance(a, jax.Array) else np


def _bounded_float_box(space: gym.Space) -> bool:
    return (isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)
            and bool(np.all(space.bounded_below)) and bool(np.all(space.bounded_above)))


def _bounds(space: gym.spaces.Box, a: Any) -> tuple:
    xp = _xp(a)
    low = xp.broadcast_to(xp.asarray(space.low, dtype=a.dtype), a.shape)
    high = xp.broadcast_to(xp.asarray(space.high, dtype=a.dtype), a.shape)
    return low, high


def _map(fn: Callable, action: Any, space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Dict):
        return {k: _map(fn, action[k], s) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_map(fn, a, s) for a, s in zip(action, space.spaces))
    return fn(action, space)


def unsquash_action(action: Any, space: gym.Space) -> Any:
    """[-1, 1] -> [low, high] (then clipped) for bounded float Box components; `action` batched
    or not (`[..., *shape]`), nested as the space."""
    def one(a: Any, s: gym.Space) -> Any:
        if not _bounded_float_box(s):
            return a
        xp = _xp(a)
        a = xp.asarray(a)
        low, high = _bounds(s, a)
        return xp.clip(low + (a + 1.0) * (high - low) / 2.0, low, high).astype(a.dtype)

    return _map(one, action, space)


def clip_action(action: Any, space: gym.Space) -> Any:
    """Box components clipped to [low, high]."""
    def one(a: Any, s: gym.Space) -> Any:
        if not isinstance(s, gym.spaces.Box):
            return a
        xp = _xp(a)
        a = xp.asarray(a)
        low, high = _bounds(s, a)
        return xp.clip(a, low, high).astype(a.dtype)

    return _map(one, action, space)


def _has_box(space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Dict):
        return any(_has_box(s) for s in space.spaces.values())
    if isinstance(space, gym.spaces.Tuple):
        return any(_has_box(s) for s in space.spaces)
    return isinstance(space, gym.spaces.Box)


def make_env_action_fn(space: gym.Space, normalize_actions: bool = True, clip_actions: bool = False) -> Callable:
    """`to_env(action) -> env action` for `space` (RLlib's NormalizeAndClipActions: unsquash
    if `normalize_actions`, else clip if `clip_actions`, else unchanged)."""
    if not _has_box(space) or not (normalize_actions or clip_actions):
        return lambda action: action
    if normalize_actions:
        return lambda action: unsquash_action(action, space)
    return lambda action: clip_action(action, space)


def action_settings(config: Any) -> dict:
    """`{"normalize_actions", "clip_actions"}` of an algorithm config (RLlib's defaults when a
    config predates the settings)."""
    return {"normalize_actions": bool(getattr(config, "normalize_actions", True)),
            "clip_actions": bool(getattr(config, "clip_actions", False))}


def env_action_fn(config: Any, space: gym.Space) -> Callable:
    """`make_env_action_fn` with the config's `normalize_actions` / `clip_actions`."""
    return make_env_action_fn(space, **action_settings(config))
