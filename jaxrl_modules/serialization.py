"""gymnasium spaces to and from JSON (for checkpoint metadata).

`space_from_json` checks what it reads: a missing key, a wrong type or an inconsistent
value is a ValueError naming where the description came from (`where`), the key, what was
expected and what was found.
"""

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
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": np.asarray(space.start).tolist()}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": int(space.n) if np.ndim(space.n) == 0 else list(space.shape)}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    raise ValueError(f"Cannot serialise space {space}; supported: Box, Discrete, MultiDiscrete, MultiBinary, Tuple, Dict")


_KINDS = ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Tuple", "Dict")


def _bad(where: str, expected: str, got: Any) -> None:
    raise ValueError(f"Space description {where} must be {expected}; got {got!r} ({type(got).__name__})")


def _get(data: dict, key: str, where: str) -> Any:
    if key not in data:
        raise ValueError(f"Space description {where} ({data.get('type')}) lacks the key {key!r}; it has {sorted(data)}")
    return data[key]


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_array(value: Any, where: str, minimum: Optional[int]) -> np.ndarray:
    arr = np.asarray(value, dtype=object) if isinstance(value, (list, int)) else None
    if arr is None or arr.dtype == object and not all(_is_int(v) for v in arr.reshape(-1)):
        _bad(where, "an int or a (nested) list of ints", value)
    arr = arr.astype(np.int64)
    if minimum is not None and (arr < minimum).any():
        _bad(where, f"ints >= {minimum}", value)
    return arr


def _numbers(value: Any, where: str, shape: tuple) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        _bad(where, "a number or a (nested) list of numbers", value)
    if isinstance(value, bool) or np.isnan(arr).any():
        _bad(where, "numbers (not NaN or bool)", value)
    if arr.shape not in ((), shape):
        _bad(where, f"a number or nested list of shape {shape}", value)
    return arr


def space_from_json(data: Any, where: str = "space") -> Optional[gym.Space]:
    """The space a `space_to_json` description stands for; a ValueError naming `where`, the
    key, what was expected and what was found when the description is not valid."""
    if data is None:
        return None
    if not isinstance(data, dict):
        _bad(where, "a dict with a 'type' key, or null", data)
    kind = data.get("type")
    if kind not in _KINDS:
        raise ValueError(f"Space description {where} has unknown type {kind!r}; expected one of {list(_KINDS)}")
    if kind == "Box":
        shape = _get(data, "shape", where)
        if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
            _bad(f"{where} 'shape'", "a list of non-negative ints", shape)
        dtype = _get(data, "dtype", where)
        try:
            if not isinstance(dtype, str):
                raise TypeError(dtype)
            dtype = np.dtype(dtype)
        except TypeError:
            _bad(f"{where} 'dtype'", "a numpy dtype name such as 'float32'", dtype)
        if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
            _bad(f"{where} 'dtype'", "a float or int dtype name", data["dtype"])
        low = _numbers(_get(data, "low", where), f"{where} 'low'", tuple(shape))
        high = _numbers(_get(data, "high", where), f"{where} 'high'", tuple(shape))
        if (low > high).any():
            raise ValueError(f"Space description {where} (Box) must have low <= high; got low {data['low']!r} "
                             f"and high {data['high']!r}")
        return gym.spaces.Box(np.broadcast_to(low, shape).astype(dtype), np.broadcast_to(high, shape).astype(dtype),
                              tuple(shape), dtype)
    if kind == "Discrete":
        n, start = _get(data, "n", where), data.get("start", 0)
        if not _is_int(n) or n < 1:
            _bad(f"{where} 'n'", "an int >= 1", n)
        if not _is_int(start):
            _bad(f"{where} 'start'", "an int", start)
        return gym.spaces.Discrete(n, start=start)
    if kind == "MultiDiscrete":
        nvec = _int_array(_get(data, "nvec", where), f"{where} 'nvec'", 1)
        if nvec.ndim == 0:
            _bad(f"{where} 'nvec'", "a (nested) list of ints >= 1", data["nvec"])
        start = _int_array(data.get("start", 0), f"{where} 'start'", None)
        if start.shape not in ((), nvec.shape):
            _bad(f"{where} 'start'", f"an int or nested list of shape {nvec.shape}", data["start"])
        return gym.spaces.MultiDiscrete(nvec, start=np.broadcast_to(start, nvec.shape))
    if kind == "MultiBinary":
        n = _get(data, "n", where)
        if not (_is_int(n) and n >= 1 or isinstance(n, list) and n and all(_is_int(d) and d >= 1 for d in n)):
            _bad(f"{where} 'n'", "an int >= 1 or a non-empty list of ints >= 1", n)
        return gym.spaces.MultiBinary(n)
    spaces = _get(data, "spaces", where)
    if kind == "Tuple":
        if not isinstance(spaces, list):
            _bad(f"{where} 'spaces'", "a list of space descriptions", spaces)
        return gym.spaces.Tuple([space_from_json(s, f"{where}[{i}]") for i, s in enumerate(spaces)])
    if not isinstance(spaces, dict):
        _bad(f"{where} 'spaces'", "a dict of space descriptions", spaces)
    return gym.spaces.Dict({k: space_from_json(s, f"{where}[{k!r}]") for k, s in spaces.items()})
