"""A fixed train batch per algorithm (CartPole-shaped; Pendulum-shaped for SAC), for tests that run a
learner's `update` directly: tests/test_honest_settings.py and tests/data_parallel_worker.py."""

from __future__ import annotations

import jax
import numpy as np

from jaxrl_modules import Columns


def fixed_batch(algo: str, size: int = 64) -> dict:
    """`size` rows of the columns `algo`'s learner ("PPO", "DQN", "SAC", "BC") trains on, from seed 0."""
    B = size
    rng = np.random.default_rng(0)
    f = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    if algo == "SAC":
        return {Columns.OBS: f(B, 3), Columns.NEXT_OBS: f(B, 3), Columns.ACTIONS: rng.uniform(-1, 1, (B, 1)).astype(np.float32),
                Columns.REWARDS: f(B), Columns.TERMINATEDS: rng.random(B) < 0.1}
    actions = rng.integers(0, 2, B)
    if algo == "DQN":
        return {Columns.OBS: f(B, 4), Columns.NEXT_OBS: f(B, 4), Columns.ACTIONS: actions, Columns.REWARDS: f(B),
                Columns.TERMINATEDS: rng.random(B) < 0.1}
    if algo == "BC":
        return {Columns.OBS: f(B, 4), Columns.ACTIONS: actions}
    logits = f(B, 2)
    logp = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), actions[:, None], -1)[:, 0]
    return {Columns.OBS: f(B, 4), Columns.ACTIONS: actions, Columns.ACTION_DIST_INPUTS: logits, Columns.ACTION_LOGP: logp,
            Columns.ADVANTAGES: f(B), Columns.VALUE_TARGETS: 5 * f(B)}
