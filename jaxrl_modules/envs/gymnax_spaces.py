"""gymnax spaces to gymnasium spaces, so modules are built the same way for both."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


def to_gymnasium(space: Any) -> gym.Space:
    from gymnax.environments import spaces

    if isinstance(space, spaces.Discrete):
        return gym.spaces.Discrete(int(space.n))
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        dtype = np.dtype(space.dtype) if np.issubdtype(np.dtype(space.dtype), np.floating) else np.float32
        low = np.broadcast_to(np.asarray(space.low, dtype=dtype), shape)
        high = np.broadcast_to(np.asarray(space.high, dtype=dtype), shape)
        return gym.spaces.Box(low, high, shape, dtype)
    if isinstance(space, spaces.Dict):
        return gym.spaces.Dict({k: to_gymnasium(s) for k, s in space.spaces.items()})
    if isinstance(space, spaces.Tuple):
        return gym.spaces.Tuple([to_gymnasium(s) for s in space.spaces])
    raise ValueError(f"Unsupported gymnax space {space}")
