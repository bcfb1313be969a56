"""DefaultModelConfig (RLlib's fields and defaults) and name -> function resolution.

Activations and initializers are given by name, as in RLlib, and resolved here once:
activations to `jax.nn` functions, initializers to `jax.nn.initializers` functions.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp

from jaxrl_modules import initializers
from jaxrl_modules.validation import boolean, fail, integer, is_int, real

Initializer = Callable[..., jax.Array]

_ACTIVATIONS: dict[str, Optional[Callable[[jax.Array], jax.Array]]] = {
    "linear": None,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "swish": jax.nn.swish,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "softmax": jax.nn.softmax,
    "leaky_relu": jax.nn.leaky_relu,
    "softplus": jax.nn.softplus,
}


def _activation_key(name: str) -> str:
    """Case and underscores do not matter: RLlib accepts "relu", "ReLU", "leakyrelu", "LeakyReLU" and "leaky_relu"."""
    return name.lower().replace("_", "")


_ACTIVATION_KEYS = {_activation_key(k): k for k in _ACTIVATIONS}

# Initializer names that are initializers themselves; every other name is a factory.
_DIRECT_INITIALIZERS = ("zeros", "ones")
_INITIALIZER_FACTORIES = (
    "constant", "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal",
    "he_uniform", "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform",
    "normal", "orthogonal", "truncated_normal", "uniform", "variance_scaling",
    "xavier_normal", "xavier_uniform",
)


# Factories replaced by vmap-safe equivalents with the same values (see jaxrl_modules.initializers).
_VMAP_SAFE: dict = {"orthogonal": initializers.orthogonal, jax.nn.initializers.orthogonal: initializers.orthogonal}


def get_activation_fn(name: Union[str, Callable, None]) -> Optional[Callable]:
    """Resolves an activation name ('tanh', 'ReLU', 'swish', 'linear', None, ...).

    Returns None for no activation. Raises ValueError listing the accepted names.
    """
    if name is None or callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(f"activation must be a str, callable or None; got {name!r} ({type(name).__name__})")
    key = _activation_key(name)
    if key not in _ACTIVATION_KEYS:
        raise ValueError(
            f"Unknown activation {name!r}; accepted names: {sorted(_ACTIVATIONS)} (any case, e.g. 'LeakyReLU') or None."
        )
    return _ACTIVATIONS[_ACTIVATION_KEYS[key]]


def get_initializer_fn(
    name: Union[str, Callable, None], kwargs: Optional[Mapping] = None, default: Optional[Initializer] = None
) -> Optional[Initializer]:
    """Resolves an initializer by `jax.nn.initializers` name (RLlib's torch names ending in
    '_' such as 'xavier_uniform_' are accepted too); factories get `kwargs`.

    A callable without kwargs is the initializer itself (`init(key, shape, dtype)`); a callable
    with kwargs is a factory called with them (e.g. `jax.nn.initializers.orthogonal`, {"scale": 2}).
    None gives `default`. Unknown names are a ValueError listing the accepted names; kwargs the
    initializer does not take are a ValueError naming the initializer and the kwarg.
    """
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"initializer kwargs for {name!r} must be a dict or None; got {kwargs!r} ({type(kwargs).__name__})")
    kwargs = dict(kwargs or {})
    if name is None:
        if kwargs:
            raise ValueError(f"initializer kwargs {kwargs} given without an initializer name; set the initializer too")
        return default
    if callable(name):
        if not kwargs:
            return name
        _check_kwargs(getattr(name, "__name__", repr(name)), name, kwargs)
        return _VMAP_SAFE.get(name, name)(**kwargs)
    if not isinstance(name, str):
        raise TypeError(f"initializer must be a name (str), a callable or None; got {name!r} ({type(name).__name__})")
    key = name.lower().rstrip("_")
    if key in _DIRECT_INITIALIZERS:
        if kwargs:
            raise ValueError(f"initializer {name!r} takes no kwargs; got {sorted(kwargs)}")
        return getattr(jax.nn.initializers, key)
    if key in _INITIALIZER_FACTORIES:
        factory = _VMAP_SAFE.get(key) or getattr(jax.nn.initializers, key)
        _check_kwargs(name, factory, kwargs)
        return factory(**kwargs)
    accepted = sorted(_DIRECT_INITIALIZERS + _INITIALIZER_FACTORIES)
    close = difflib.get_close_matches(key, accepted, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown initializer {name!r};{hint} accepted names: {accepted} or a callable.")


def _check_kwargs(name: str, factory: Callable, kwargs: dict) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    for kwarg in kwargs:
        if kwarg not in accepted:
            raise ValueError(f"initializer {name!r} does not accept the kwarg {kwarg!r}; it accepts {accepted}")


@dataclasses.dataclass(frozen=True)
class DefaultModelConfig:
    """Configuration of the default MLP/CNN/LSTM encoders and heads (RLlib's defaults)."""

    fcnet_hiddens: list = dataclasses.field(default_factory=lambda: [256, 256])
    fcnet_activation: Any = "tanh"
    fcnet_kernel_initializer: Any = None
    fcnet_kernel_initializer_kwargs: Optional[dict] = None
    fcnet_bias_initializer: Any = None
    fcnet_bias_initializer_kwargs: Optional[dict] = None
    fcnet_use_layernorm: bool = False
    conv_filters: Optional[list] = None
    conv_activation: Any = "relu"
    conv_kernel_initializer: Any = None
    conv_kernel_initializer_kwargs: Optional[dict] = None
    conv_bias_initializer: Any = None
    conv_bias_initializer_kwargs: Optional[dict] = None
    head_fcnet_hiddens: list = dataclasses.field(default_factory=list)
    head_fcnet_activation: Any = "relu"
    head_fcnet_kernel_initializer: Any = None
    head_fcnet_kernel_initializer_kwargs: Optional[dict] = None
    head_fcnet_bias_initializer: Any = None
    head_fcnet_bias_initializer_kwargs: Optional[dict] = None
    head_fcnet_use_layernorm: bool = False
    free_log_std: bool = False
    log_std_clip_param: float = 20.0
    vf_share_layers: bool = True
    use_lstm: bool = False
    max_seq_len: int = 20
    lstm_cell_size: int = 256
    lstm_use_prev_action: bool = False
    lstm_use_prev_reward: bool = False
    lstm_kernel_initializer: Any = None
    lstm_kernel_initializer_kwargs: Optional[dict] = None
    lstm_bias_initializer: Any = None
    lstm_bias_initializer_kwargs: Optional[dict] = None

    def __post_init__(self) -> None:
        """Every value checked: a ValueError/TypeError naming the field, what it accepts and the value."""
        for field in ("fcnet_activation", "conv_activation", "head_fcnet_activation"):
            try:
                get_activation_fn(getattr(self, field))
            except (TypeError, ValueError) as err:
                raise type(err)(f"{field}: {err}") from None
        for prefix in ("fcnet", "conv", "head_fcnet", "lstm"):
            for part in ("kernel", "bias"):
                name = f"{prefix}_{part}_initializer"
                try:
                    get_initializer_fn(getattr(self, name), getattr(self, name + "_kwargs"))
                except (TypeError, ValueError) as err:
                    raise type(err)(f"{name}: {err}") from None
        _check_layer_sizes("fcnet_hiddens", self.fcnet_hiddens, allow_empty=False)
        _check_layer_sizes("head_fcnet_hiddens", self.head_fcnet_hiddens, allow_empty=True)
        if self.conv_filters is not None:
            check_conv_filters(self.conv_filters)
        for field in ("fcnet_use_layernorm", "head_fcnet_use_layernorm", "free_log_std", "vf_share_layers", "use_lstm",
                      "lstm_use_prev_action", "lstm_use_prev_reward"):
            object.__setattr__(self, field, boolean()(field, getattr(self, field)))  # numpy/JAX scalars as Python ones
        for field in ("lstm_use_prev_action", "lstm_use_prev_reward"):  # RLlib's names, which its new stack ignores
            if getattr(self, field):
                fail(field, "False (the default): the default modules' LSTM takes the encoder's output only; previous "
                     "actions and rewards are not fed to it (RLlib's new-stack Catalog does not read this field either; "
                     "feed them through an env-to-module connector)", getattr(self, field))
        object.__setattr__(self, "log_std_clip_param",
                           real(0, low_open=True, allow_inf=True)("log_std_clip_param", self.log_std_clip_param))
        object.__setattr__(self, "max_seq_len", integer(1)("max_seq_len", self.max_seq_len))
        object.__setattr__(self, "lstm_cell_size", integer(1)("lstm_cell_size", self.lstm_cell_size))

    @classmethod
    def from_any(cls, config: Union["DefaultModelConfig", Mapping, None], extra_keys: tuple = ()) -> "DefaultModelConfig":
        """Normalises a config object, a (possibly frozen) mapping or None into a `cls`, for a default module.

        Missing keys take the class's defaults, as RLlib's Catalog does. A key that is neither a
        field of `cls` nor one of `extra_keys` is a ValueError with a "did you mean" suggestion: a
        typo never silently falls back to a default. Algorithm settings that RLlib auto-includes
        into the model config (DQN's `epsilon`, SAC's `twin_q`) are fields of the algorithm's own
        subclass (`DQNModelConfig`, `SACModelConfig`), which its default module normalises to; a
        custom module that reads its own keys from the same dict passes them as `extra_keys`.
        A config object of a base class of `cls` (a plain DefaultModelConfig given to DQN's module)
        is extended with `cls`'s defaults; one of another subclass (SAC's given to DQN's) is a TypeError.
        """
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if isinstance(config, DefaultModelConfig):
            if issubclass(cls, type(config)):
                return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
            raise TypeError(f"model_config must be a {cls.__name__}, a DefaultModelConfig, a dict or None; got a "
                            f"{type(config).__name__} (the model config of another algorithm's module)")
        if not isinstance(config, Mapping):
            what = "a DefaultModelConfig" if cls is DefaultModelConfig else f"a {cls.__name__}, a DefaultModelConfig"
            raise TypeError(f"model_config must be {what}, a dict or None; got {type(config).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in config:
            if key not in names and key not in extra_keys:
                close = difflib.get_close_matches(str(key), names + list(extra_keys), n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"Unknown model_config key {key!r} for a default module ({cls.__name__}).{hint} "
                                 f"Known keys: the {cls.__name__} fields {names}"
                                 + (f" and {list(extra_keys)}" if extra_keys else ""))
        kwargs = {k: _thaw(v) for k, v in config.items() if k in names}
        return cls(**kwargs)

    @classmethod
    def field_default(cls, name: str) -> Any:
        """The default of field `name` (a fresh copy for list/dict defaults): the one place a
        setting's default is declared, which algorithm configs read theirs from."""
        field = {f.name: f for f in dataclasses.fields(cls)}.get(name)
        if field is None:
            fail("name", f"a field of {cls.__name__}", name)
        return field.default_factory() if field.default is dataclasses.MISSING else field.default

    def to_dict(self) -> dict:
        """A plain dict of every field (JSON-friendly when initializers are names)."""
        return dataclasses.asdict(self)

    def activation(self, field: str) -> Optional[Callable]:
        return get_activation_fn(getattr(self, field))

    def initializer(self, prefix: str, part: str, default: Initializer) -> Initializer:
        name = f"{prefix}_{part}_initializer"
        return get_initializer_fn(getattr(self, name), getattr(self, name + "_kwargs"), default)


def _check_layer_sizes(field: str, sizes: Any, allow_empty: bool) -> None:
    expected = f"a {'' if allow_empty else 'non-empty '}list of ints >= 1 (layer sizes)"
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (list, tuple)):
        fail(field, expected, sizes, TypeError)
    if not sizes and not allow_empty:
        fail(field, f"{expected}: name at least one layer", sizes)
    for i, size in enumerate(sizes):
        if not is_int(size):
            fail(f"{field}[{i}]", f"an int >= 1 (layer size in {field}={list(sizes)!r})", size, TypeError)
        if size < 1:
            fail(f"{field}[{i}]", f"an int >= 1 (layer size in {field}={list(sizes)!r})", size)


def _check_int_or_pair(field: str, value: Any) -> None:
    expected = "an int >= 1 or a pair [h, w] of ints >= 1"
    items = value if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, (list, tuple)) and len(value) != 2:
        fail(field, expected, value)
    for item in items:
        if not is_int(item):
            fail(field, expected, value, TypeError)
        if item < 1:
            fail(field, expected, value)


def check_conv_filters(filters: Any) -> None:
    """`[[out_channels, kernel, stride(, padding)], ...]`: out_channels an int >= 1, kernel and stride
    ints >= 1 or [h, w] pairs of them, padding "same" (default) or "valid"."""
    expected = "a non-empty list of [out_channels, kernel, stride(, padding)] filters"
    if isinstance(filters, (str, bytes)) or not isinstance(filters, (list, tuple)):
        fail("conv_filters", expected, filters, TypeError)
    if not filters:
        fail("conv_filters", expected, filters)
    for i, f in enumerate(filters):
        name = f"conv_filters[{i}]"
        if isinstance(f, (str, bytes)) or not isinstance(f, (list, tuple)) or len(f) not in (3, 4):
            fail(name, "[out_channels, kernel, stride(, padding)]", f, TypeError if not isinstance(f, (list, tuple))
                 else ValueError)
        if not is_int(f[0]) or f[0] < 1:
            fail(f"{name} out_channels", "an int >= 1", f[0], TypeError if not is_int(f[0]) else ValueError)
        _check_int_or_pair(f"{name} kernel", f[1])
        _check_int_or_pair(f"{name} stride", f[2])
        if len(f) == 4 and (not isinstance(f[3], str) or f[3].lower() not in ("same", "valid")):
            fail(f"{name} padding", "'same' or 'valid'", f[3], TypeError if not isinstance(f[3], str) else ValueError)


def _thaw(value: Any) -> Any:
    """Frozen mapping/tuple values (flax freezes dict fields) back to dicts/lists."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value
