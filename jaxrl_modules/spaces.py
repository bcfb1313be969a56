"""Helpers over gymnasium spaces: dummy arrays and trace-time batch validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np


def space_zeros(space: gym.Space, lead: tuple, what: str = "") -> Any:
    """Zeros shaped `[*lead, *space.shape]` with the space's dtype, nested for Tuple/Dict.
    Discrete/MultiDiscrete give their `start` instead of 0, so a dummy action is in the space."""
    if isinstance(space, gym.spaces.Dict):
        return {k: space_zeros(s, lead, what) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(space_zeros(s, lead, what) for s in space.spaces)
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        start = jnp.asarray(np.asarray(space.start), jnp.int32)
        return jnp.broadcast_to(start, lead + tuple(space.shape))
    if isinstance(space, (gym.spaces.Box, gym.spaces.MultiBinary)):
        dtype = jnp.int32 if np.issubdtype(space.dtype, np.integer) else jnp.float32
        return jnp.zeros(lead + tuple(space.shape), dtype)
    kind = f"{what} " if what else ""
    raise ValueError(f"Unsupported {kind}space {space}; expected Box, Discrete, MultiDiscrete, MultiBinary, Tuple or Dict.")


def _shape_str(lead: int, space_shape: tuple) -> str:
    names = ("B", "T")[:lead]
    return "(" + ", ".join(list(names) + [str(d) for d in space_shape]) + ")"


def check_obs(space: gym.Space, obs: Any, lead: int, where: str = "obs") -> None:
    """Raises ValueError/TypeError if `obs` is not `[*lead_dims, *space.shape]` of the space's kind."""
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(obs, Mapping) or set(obs) != set(space.spaces):
            got = sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__
            raise ValueError(f"{where} must be a dict with keys {sorted(space.spaces)}; got {got}")
        for k, s in space.spaces.items():
            check_obs(s, obs[k], lead, f"{where}[{k!r}]")
        return
    if isinstance(space, gym.spaces.Tuple):
        if not isinstance(obs, (tuple, list)) or len(obs) != len(space.spaces):
            raise ValueError(f"{where} must be a tuple of {len(space.spaces)} arrays; got {type(obs).__name__}")
        for i, (s, o) in enumerate(zip(space.spaces, obs)):
            check_obs(s, o, lead, f"{where}[{i}]")
        return
    if not hasattr(obs, "shape") or not hasattr(obs, "dtype"):
        raise TypeError(f"{where} must be an array; got {type(obs).__name__}")
    shape, expected = tuple(obs.shape), tuple(space.shape)
    if len(shape) != lead + len(expected) or shape[lead:] != expected:
        raise ValueError(
            f"{where} has shape {shape}; expected {_shape_str(lead, expected)} for observation space {space}"
            + (" (batches carry a leading batch axis)" if shape == expected else "")
        )
    space_int = np.issubdtype(space.dtype, np.integer) or np.issubdtype(space.dtype, np.bool_)
    obs_float = jnp.issubdtype(obs.dtype, jnp.floating)
    if isinstance(space, gym.spaces.Box) and not space_int and not obs_float:
        raise TypeError(f"{where} has dtype {obs.dtype}; expected a float dtype for observation space {space}")
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)) and obs_float:
        raise TypeError(f"{where} has dtype {obs.dtype}; expected an integer dtype for observation space {space}")


def leading_shape(obs: Any, lead: int) -> tuple:
    return tuple(jax.tree_util.tree_leaves(obs)[0].shape[:lead])
