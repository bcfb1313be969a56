"""The default encoder (RLlib's Catalog choice) and default heads, from a DefaultModelConfig.

1-D Box observations get the MLP encoder, `[H, W, C]` observations the CNN encoder, and
`use_lstm=True` wraps either (as a per-timestep tokenizer) in an LSTM.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp


from jaxrl_modules.distributions import DiagGaussian
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.models.cnn import CNN, get_filter_config, normalize_filters
from jaxrl_modules.models.lstm import LSTM
from jaxrl_modules.models.mlp import MLP, GaussianHead, default_bias_init, default_kernel_init


def check_observation_space(space: gym.Space) -> None:
    """Raises ValueError for observation spaces the default encoders cannot take."""
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(
            f"The default encoders need a Box observation space (1-D or [H, W, C]); got {space}. "
            "Use jaxrl_modules.connectors.FlattenObservations for Discrete/Dict/Tuple observations."
        )
    if len(space.shape) not in (1, 3):
        raise ValueError(
            f"The default encoders need a 1-D or 3-D ([H, W, C]) Box observation space; got shape "
            f"{space.shape}. Flatten it or make it 3-D."
        )
    if 0 in space.shape:
        raise ValueError(f"The default encoders need a Box observation space with at least one value; got shape "
                         f"{space.shape} (a zero-size dimension) in {space}")


class Encoder(nn.Module):
    """Observations -> embeddings. `obs`: `[..., *obs_shape]` (`[B, T, *obs_shape]` with LSTM).

    Returns `(embeddings, state_out)`; `state_out` is None unless `config.use_lstm`.
    """

    obs_shape: tuple
    config: DefaultModelConfig

    def _tokenizer(self) -> nn.Module:
        cfg = self.config
        if len(self.obs_shape) == 3:
            filters = cfg.conv_filters if cfg.conv_filters is not None else get_filter_config(self.obs_shape)
            return CNN(
                normalize_filters(filters), cfg.activation("conv_activation"),
                cfg.initializer("conv", "kernel", default_kernel_init),
                cfg.initializer("conv", "bias", default_bias_init), name="cnn",
            )
        return MLP(
            tuple(cfg.fcnet_hiddens), cfg.activation("fcnet_activation"),
            kernel_init=cfg.initializer("fcnet", "kernel", default_kernel_init),
            bias_init=cfg.initializer("fcnet", "bias", default_bias_init),
            use_layernorm=cfg.fcnet_use_layernorm, name="mlp",
        )

    @nn.compact
    def __call__(
        self, obs: jax.Array, state: Optional[dict] = None, resets: Optional[jax.Array] = None
    ) -> tuple[jax.Array, Optional[dict]]:
        x = self._tokenizer()(obs)
        if not self.config.use_lstm:
            return x, None
        cfg = self.config
        lstm = LSTM(
            cfg.lstm_cell_size, cfg.initializer("lstm", "kernel", default_kernel_init),
            cfg.initializer("lstm", "bias", default_bias_init), name="lstm",
        )
        return lstm(x, state, resets)


def initial_lstm_state(config: DefaultModelConfig) -> dict:
    """The default LSTM state without a batch axis: `{"h": [cell], "c": [cell]}`."""
    return {"h": jnp.zeros((config.lstm_cell_size,)), "c": jnp.zeros((config.lstm_cell_size,))}


def make_head(config: DefaultModelConfig, output_dim: int, dist_cls: Optional[type] = None,
              name: Optional[str] = None) -> nn.Module:
    """An MLP head over `head_fcnet_hiddens` (a LayerNorm after each hidden layer with
    `head_fcnet_use_layernorm`, for every head as RLlib) with a linear output of `output_dim` units.

    For a DiagGaussian policy the log-std half is clipped to ±log_std_clip_param, or, with
    `free_log_std`, is a learned state-independent parameter.
    """
    common = dict(
        hiddens=tuple(config.head_fcnet_hiddens),
        activation=config.activation("head_fcnet_activation"),
        kernel_init=config.initializer("head_fcnet", "kernel", default_kernel_init),
        bias_init=config.initializer("head_fcnet", "bias", default_bias_init),
        name=name,
    )
    is_gaussian = dist_cls is not None and issubclass(dist_cls, DiagGaussian)
    if config.free_log_std and dist_cls is not None and not is_gaussian:
        raise ValueError(f"free_log_std=True needs a DiagGaussian action distribution; got {dist_cls}")
    if is_gaussian:
        return GaussianHead(action_dim=output_dim // 2, free_log_std=config.free_log_std,
                            log_std_clip=config.log_std_clip_param, use_layernorm=config.head_fcnet_use_layernorm,
                            **common)
    return MLP(output_dim=output_dim, use_layernorm=config.head_fcnet_use_layernorm, **common)




def refuse_unused_model_fields(config: DefaultModelConfig, module_cls: type) -> None:
    """The DefaultModelConfig fields a default module has no use for (its `unused_model_fields`
    ClassVar: `{field: why}`) must keep their defaults: any other value is a ValueError naming the
    field, the default it accepts, why, and the value received, rather than being ignored. Called
    when the module is constructed (spec build) and by `AlgorithmConfig.validate()` for a default module."""
    from jaxrl_modules.validation import fail

    for name, why in getattr(module_cls, "unused_model_fields", {}).items():
        default = DefaultModelConfig.field_default(name)
        value = getattr(config, name, default)
        if value != default:  # the config's values are normalised (Python bools and floats)
            fail(f"model_config[{name!r}]", f"{default!r} (the default) for {module_cls.__name__}: {why}", value)
