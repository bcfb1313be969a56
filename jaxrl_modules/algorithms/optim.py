"""The optax optimizer every learner builds: optional global-norm clipping, then Adam."""

from __future__ import annotations

from typing import Any, Optional

import optax


def adam_with_clip(lr: Any, grad_clip: Optional[float], eps: float = 1e-8) -> optax.GradientTransformation:
    """`clip_by_global_norm(grad_clip)` (when set) chained with `adam(lr, eps)`; lr may be a schedule."""
    clip = [optax.clip_by_global_norm(grad_clip)] if grad_clip else []
    return optax.chain(*clip, optax.adam(lr, eps=eps))
