"""Value checks for config settings: tiny reusable validators and the rule for using them.

A validator is `check(name, value) -> value`: it returns the value (normalised where a
shorthand is accepted, e.g. a bare float epsilon becomes a constant schedule) or raises a
`TypeError` (wrong kind: a string where a number is expected, a bool where an int is) or a
`ValueError` (right kind, out of range), each message naming the setting, what is allowed
and the value received. Every config holds one table `{setting: validator}`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

Check = Callable[[str, Any], Any]


def _received(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def fail(name: str, expected: str, value: Any, exc: type = ValueError) -> None:
    raise exc(f"{name} must be {expected}; got {_received(value)}")


def _scalar(value: Any) -> Any:
    """A 0-d NumPy or JAX array (e.g. `jnp.float32(1e-3)`) as its Python number; anything else as is."""
    if getattr(value, "shape", None) == () and hasattr(value, "dtype") and not isinstance(value, (np.generic, str, bytes)):
        return value.item()
    return value


def is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not is_bool(value)


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not is_bool(value)


def validator(expected: str, check: Callable[[str, Any], Any]) -> Check:
    """Tags `check(name, value)` with the text of what it accepts (used by `optional` and friends)."""
    check.expected = expected  # type: ignore[attr-defined]
    return check


def _range_text(kind: str, low: Any, high: Any, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    return kind


def real(low: Any = None, high: Any = None, *, low_open: bool = False, high_open: bool = False,
         allow_inf: bool = False) -> Check:
    """A number (not a bool, not a string) in the range; NaN always rejected, inf unless `allow_inf`."""
    bounded = low is not None and high is not None
    expected = _range_text("a number" if allow_inf or bounded else "a finite number", low, high, low_open, high_open)

    def check(name: str, value: Any) -> Any:
        value = _scalar(value)
        if not is_real(value):
            fail(name, expected, value, TypeError)
        v = float(value)
        if math.isnan(v) or (math.isinf(v) and not allow_inf):
            fail(name, expected if "finite" in expected else f"a finite number ({expected})", value)
        below = low is not None and (v <= low if low_open else v < low)
        above = high is not None and (v >= high if high_open else v > high)
        if below or above:
            fail(name, expected, value)
        return value

    return validator(expected, check)


def integer(low: Any = None, high: Any = None) -> Check:
    """An int (numpy ints too, never a bool or a float such as 2.0) in `[low, high]`."""
    expected = _range_text("an int", low, high, False, False)

    def check(name: str, value: Any) -> Any:
        value = _scalar(value)
        if not is_int(value):
            fail(name, expected, value, TypeError)
        if (low is not None and value < low) or (high is not None and value > high):
            fail(name, expected, value)
        return int(value)

    return validator(expected, check)


positive_float = real(0, low_open=True)
nonnegative_float = real(0)
unit_interval = real(0, 1)
positive_int = integer(1)
nonnegative_int = integer(0)
# Seeds: numpy's legacy seeding takes at most 2**32 - 1, JAX keys int64, gymnasium's reset(seed=) any int >= 0. One range
# for every seed (a config's, evaluation's, the command line's --seed), leaving room for the seed + i the loops derive.
SEED_MAX = 2**32 - 1
seed_int = integer(0, SEED_MAX)


def boolean() -> Check:
    def check(name: str, value: Any) -> Any:
        value = _scalar(value)
        if not is_bool(value):
            fail(name, "a bool (True or False)", value, TypeError)
        return bool(value)

    return validator("a bool (True or False)", check)


def _same_kind(value: Any, choice: Any) -> bool:
    if is_bool(value) or is_bool(choice):
        return is_bool(value) and is_bool(choice)
    return isinstance(value, type(choice)) or (is_real(value) and is_real(choice))


def one_of(*choices: Any, expected: str = "") -> Check:
    """One of `choices` (compared with their kind: True is not 1, "1" is not 1)."""
    expected = expected or f"one of {list(choices)}"

    def check(name: str, value: Any) -> Any:
        if any(_same_kind(value, c) and value == c for c in choices):
            return value
        wrong_kind = not any(_same_kind(value, c) for c in choices if c is not None)
        fail(name, expected, value, TypeError if wrong_kind else ValueError)

    return validator(expected, check)


def _either(accepts: Callable[[Any], bool], label: str, inner: Check) -> Check:
    """A value `accepts` takes as it is, or what `inner` accepts; one message naming both."""
    expected = f"{label} or {inner.expected}"  # type: ignore[attr-defined]

    def check(name: str, value: Any) -> Any:
        if accepts(value):
            return value
        try:
            return inner(name, value)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name} must be {expected}; got {_received(value)}") from None

    return validator(expected, check)


def optional(inner: Check) -> Check:
    """None, or what `inner` accepts."""
    return _either(lambda value: value is None, "None", inner)


def literal_or(literal: str, inner: Check) -> Check:
    """The string `literal` (e.g. "auto"), or what `inner` accepts."""
    return _either(lambda value: isinstance(value, str) and value == literal, repr(literal), inner)


def instance_of(*types: type, allow_none: bool = True, what: str = "") -> Check:
    names = what or " or ".join(t.__name__ for t in types)
    expected = f"None or {names}" if allow_none else names

    def check(name: str, value: Any) -> Any:
        if value is None and allow_none:
            return None
        if not isinstance(value, types):
            fail(name, expected, value, TypeError)
        return value

    return validator(expected, check)


def callable_or_none() -> Check:
    def check(name: str, value: Any) -> Any:
        if value is not None and not callable(value):
            fail(name, "None or a callable", value, TypeError)
        return value

    return validator("None or a callable", check)


def none_only(expected: str) -> Check:
    """Only None: a setting this config does not support (`expected` says why)."""

    def check(name: str, value: Any) -> Any:
        if value is not None:
            fail(name, expected, value)
        return None

    return validator(expected, check)


def anything() -> Check:
    return validator("anything", lambda name, value: value)


def schedule(low: float = 0, high: float = 1) -> Check:
    """RLlib's piecewise-linear schedule `[(t, v), ...]`: ints/floats t >= 0, strictly increasing,
    each v in [low, high]; a bare number v is accepted as the constant schedule `[(0, v)]`."""
    expected = f"a number in [{low}, {high}] or a schedule [(t, v), ...] with increasing t >= 0 and v in [{low}, {high}]"

    def check(name: str, value: Any) -> Any:
        if is_real(value):
            real(low, high)(name, value)
            return [(0, float(value))]
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) or not value:
            fail(name, expected, value, TypeError if not isinstance(value, (list, tuple)) else ValueError)
        out, last = [], None
        for i, point in enumerate(value):
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                fail(f"{name}[{i}]", f"a (t, v) pair ({expected})", point, TypeError)
            t, v = point
            real(0)(f"{name}[{i}] t", t)
            real(low, high)(f"{name}[{i}] v", v)
            if last is not None and t <= last:
                fail(f"{name}[{i}] t", f"greater than the previous t={last} ({expected})", t)
            last = t
            out.append((t, float(v)))
        return out

    return validator(expected, check)


def check_table(table: Mapping[str, Check], values: Mapping[str, Any]) -> dict:
    """Checks each `values[key]` that the table names; returns the (normalised) values."""
    return {key: table[key](key, value) if key in table else value for key, value in values.items()}
