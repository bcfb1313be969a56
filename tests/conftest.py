"""Shared fixtures: small spaces and modules, built once per session so jits are reused."""

import gymnasium as gym
import jax
import numpy as np
import pytest

from jaxrl_modules import DefaultModelConfig, RLModuleSpec
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule

jax.config.update("jax_numpy_rank_promotion", "raise")

CARTPOLE_OBS = gym.spaces.Box(
    np.array([-4.8, -np.inf, -0.41887903, -np.inf], np.float32),
    np.array([4.8, np.inf, 0.41887903, np.inf], np.float32), (4,), np.float32)
CARTPOLE_ACT = gym.spaces.Discrete(2)


@pytest.fixture(scope="session")
def cartpole_spaces():
    return CARTPOLE_OBS, CARTPOLE_ACT


@pytest.fixture(scope="session")
def small_config():
    return DefaultModelConfig(fcnet_hiddens=[16, 16])


@pytest.fixture(scope="session")
def ppo_module(small_config):
    return DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=small_config)


@pytest.fixture(scope="session")
def ppo_params(ppo_module):
    return ppo_module.init(jax.random.key(0))


@pytest.fixture(scope="session")
def ppo_spec(small_config):
    return RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config=small_config)


@pytest.fixture
def fast_compiles():
    """For files of tiny runs, where compiling dominates: skip most XLA optimizations (about halves it).
    Use with `pytestmark = pytest.mark.usefixtures("fast_compiles")`."""
    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture
def obs_batch():
    return np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)


def raises_naming(exc_type, fn, *fragments):
    """Calls `fn()`; asserts it raises `exc_type` whose message contains every fragment
    (case-insensitive): the setting or path, what was expected and what was received.
    Returns the exception. The bad-input matrices use this for every case."""
    with pytest.raises(exc_type) as info:
        fn()
    message = str(info.value).lower()
    missing = [f for f in fragments if str(f).lower() not in message]
    assert not missing, f"{exc_type.__name__} message lacks {missing}: {info.value}"
    return info.value
