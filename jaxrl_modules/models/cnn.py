"""RLlib's CNN encoder for `[H, W, C]` observations, with its default filter stacks."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax

from jaxrl_modules.models.mlp import default_bias_init, default_kernel_init

# RLlib 2.60's `get_filter_config`: [out_channels, kernel, stride] per layer, "same" padding.
DEFAULT_FILTERS: dict[tuple[int, int], list] = {
    (96, 96): [[16, 8, 4], [32, 4, 2], [256, 11, 2]],
    (84, 84): [[16, 8, 4], [32, 4, 2], [256, 11, 1]],
    (64, 64): [[16, 4, 2], [32, 4, 2], [64, 4, 2], [128, 4, 2]],
    (42, 42): [[16, 4, 2], [32, 4, 2], [256, 11, 1]],
    (10, 10): [[16, 5, 2], [32, 5, 2]],
}


def get_filter_config(obs_shape: Sequence[int]) -> list:
    """RLlib's default conv filters for an image shape, or a ValueError for unknown sizes."""
    shape = tuple(obs_shape)
    for key in (shape[:2], shape[-2:]):
        if key in DEFAULT_FILTERS:
            return DEFAULT_FILTERS[key]
    hint = " (Atari frames: use wrap_atari_for_new_api_stack to resize to 64x64)" if shape[:2] == (210, 160) else ""
    raise ValueError(
        f"No default conv_filters for observation shape {shape}; known sizes: "
        f"{sorted(DEFAULT_FILTERS)}. Set model_config conv_filters=[[out, kernel, stride], ...]{hint}."
    )


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def normalize_filters(filters: Sequence[Sequence]) -> tuple:
    """[[out, kernel, stride(, padding)], ...] -> hashable tuples with TF-style padding names."""
    out = []
    for f in filters:
        if len(f) not in (3, 4):
            raise ValueError(f"Each conv filter is [out_channels, kernel, stride(, padding)]; got {list(f)}")
        padding = (f[3] if len(f) == 4 else "same").upper()
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"Conv padding must be 'same' or 'valid'; got {f[3]!r}")
        out.append((int(f[0]), _pair(f[1]), _pair(f[2]), padding))
    return tuple(out)


def check_output_size(filters: Sequence, obs_shape: Sequence[int]) -> None:
    """Raises a ValueError naming the first layer whose output would be smaller than 1x1 for
    `[H, W, C]` observations ("valid" padding shrinks by kernel - 1; "same" never below 1)."""
    h, w = int(obs_shape[0]), int(obs_shape[1])
    for i, (channels, kernel, stride, padding) in enumerate(filters):
        if padding == "VALID":
            h_out, w_out = (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1
        else:
            h_out, w_out = -(-h // stride[0]), -(-w // stride[1])
        if h_out < 1 or w_out < 1:
            raise ValueError(
                f"conv_filters[{i}] = [{channels}, {list(kernel)}, {list(stride)}, {padding.lower()!r}] shrinks its "
                f"{h}x{w} input (observation shape {tuple(obs_shape)}) below 1x1; expected a kernel no larger than "
                f"the input for 'valid' padding")
        h, w = h_out, w_out


class CNN(nn.Module):
    """Conv layers (TF-style "same" padding, as RLlib) with activation, then flatten (H, W, C order).

    x: `[..., H, W, C]` -> `[..., latent]`.
    """

    filters: tuple
    activation: Optional[Callable] = nn.relu
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        check_output_size(self.filters, x.shape[-3:])
        lead = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:])
        for i, (channels, kernel, stride, padding) in enumerate(self.filters):
            x = nn.Conv(channels, kernel, stride, padding=padding, kernel_init=self.kernel_init,
                        bias_init=self.bias_init, name=f"conv_{i}")(x)
            if self.activation is not None:
                x = self.activation(x)
        return x.reshape(lead + (-1,))
