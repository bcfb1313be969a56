"""DefaultModelConfig (RLlib's fields and defaults) and name -> function resolution.

Activations and initializers are given by name, as in RLlib, and resolved here once:
activations to `jax.nn` functions, initializers to `jax.nn.initializers` functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp

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

# Initializer names that are initializers themselves; every other name is a factory.
_DIRECT_INITIALIZERS = ("zeros", "ones")
_INITIALIZER_FACTORIES = (
    "constant", "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal",
    "he_uniform", "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform",
    "normal", "orthogonal", "truncated_normal", "uniform", "variance_scaling",
    "xavier_normal", "xavier_uniform",
)


def get_activation_fn(name: Union[str, Callable, None]) -> Optional[Callable]:
    """Resolves an activation name ('tanh', 'ReLU', 'swish', 'linear', None, ...).

    Returns None for no activation. Raises ValueError listing the accepted names.
    """
    if name is None or callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(f"activation must be a str, callable or None; got {type(name).__name__}")
    key = name.lower()
    if key not in _ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}; accepted names: {sorted(_ACTIVATIONS)} or None."
        )
    return _ACTIVATIONS[key]


def get_initializer_fn(
    name: Union[str, Callable, None], kwargs: Optional[Mapping] = None, default: Optional[Initializer] = None
) -> Optional[Initializer]:
    """Resolves an initializer by `jax.nn.initializers` name (RLlib's torch names ending in
    '_' such as 'xavier_uniform_' are accepted too); factories get `kwargs`.

    None gives `default`. Raises ValueError listing the accepted names.
    """
    if name is None:
        return default
    if callable(name):
        return name
    key = name.lower().rstrip("_")
    kwargs = dict(kwargs or {})
    if key in _DIRECT_INITIALIZERS:
        return getattr(jax.nn.initializers, key)
    if key in _INITIALIZER_FACTORIES:
        return getattr(jax.nn.initializers, key)(**kwargs)
    raise ValueError(
        f"Unknown initializer {name!r}; accepted names: "
        f"{sorted(_DIRECT_INITIALIZERS + _INITIALIZER_FACTORIES)} or a callable."
    )


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
        for field in ("fcnet_activation", "conv_activation", "head_fcnet_activation"):
            get_activation_fn(getattr(self, field))
        for prefix in ("fcnet", "conv", "head_fcnet", "lstm"):
            for part in ("kernel", "bias"):
                name = f"{prefix}_{part}_initializer"
                get_initializer_fn(getattr(self, name), getattr(self, name + "_kwargs"))
        if not self.fcnet_hiddens:
            raise ValueError("fcnet_hiddens must name at least one layer size; got an empty list.")

    @classmethod
    def from_any(cls, config: Union["DefaultModelConfig", Mapping, None]) -> "DefaultModelConfig":
        """Normalises a DefaultModelConfig, a (possibly frozen) mapping or None.

        Missing keys take RLlib's defaults, as RLlib's Catalog does; unknown keys are
        ignored so custom modules may carry extra settings in the same dict.
        """
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if not isinstance(config, Mapping):
            raise TypeError(
                f"model_config must be a DefaultModelConfig, a dict or None; got {type(config).__name__}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: _thaw(v) for k, v in config.items() if k in names}
        return cls(**kwargs)

    def to_dict(self) -> dict:
        """A plain dict of every field (JSON-friendly when initializers are names)."""
        return dataclasses.asdict(self)

    def activation(self, field: str) -> Optional[Callable]:
        return get_activation_fn(getattr(self, field))

    def initializer(self, prefix: str, part: str, default: Initializer) -> Initializer:
        name = f"{prefix}_{part}_initializer"
        return get_initializer_fn(getattr(self, name), getattr(self, name + "_kwargs"), default)


def _thaw(value: Any) -> Any:
    """Frozen mapping/tuple values (flax freezes dict fields) back to dicts/lists."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value
