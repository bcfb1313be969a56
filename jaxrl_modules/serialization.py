"""gymnasium spaces to and from JSON (for checkpoint metadata)."""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np


def space_to_json(space: Optional[gym.Space]) -> Any:
    if space is None:
        return None
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(),
                "shape": list(space.shape), "dtype": str(space.dtype)}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": list(space.shape)}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    raise ValueError(f"Cannot serialise space {space}; supported: Box, Discrete, MultiDiscrete, MultiBinary, Tuple, Dict")


def space_from_json(data: Any) -> Optional[gym.Space]:
    if data is None:
        return None
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "Box":
        return gym.spaces.Box(np.asarray(data["low"], dtype=data["dtype"]), np.asarray(data["high"], dtype=data["dtype"]),
                              tuple(data["shape"]), np.dtype(data["dtype"]))
    if kind == "Discrete":
        return gym.spaces.Discrete(data["n"], start=data["start"])
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(data["nvec"])
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(data["n"])
    if kind == "Tuple":
        return gym.spaces.Tuple([space_from_json(s) for s in data["spaces"]])
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_json(s) for k, s in data["spaces"].items()})
    raise ValueError(f"Unknown space description {data!r}")
