"""Pieces we take from the pinned libraries instead of writing them: optax's target-network
updates, gymnasium's flat dimension; and why DQN's epsilon-greedy stays ours (not distrax's).
Each is checked bit for bit against the formula it replaced."""

import distrax
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.spaces.utils import flatdim

from jaxrl_modules import Columns
from jaxrl_modules.algorithms.dqn import DefaultDQNRLModule, DQNConfig
from jaxrl_modules.algorithms.dqn.learner import DQNLearner
from jaxrl_modules.algorithms.sac import DefaultSACRLModule, SACConfig
from jaxrl_modules.algorithms.sac.learner import SACLearner
from jaxrl_modules.apis import TargetNetworkAPI
from jaxrl_modules.distributions.gaussian import DiagGaussian, SquashedGaussian

from conftest import CARTPOLE_OBS


def _old_polyak(params, target, tau):
    return jax.tree_util.tree_map(lambda m, t: tau * m + (1.0 - tau) * t, params, target)


def _old_gated(params, target, tau, n, freq):
    """The learners' former target step: polyak, kept only after update n % freq == 0."""
    sync = n % freq == 0
    return jax.tree_util.tree_map(lambda new, old: jnp.where(sync, new, old), _old_polyak(params, target, tau), target)


def _random_tree(key, dtype=jnp.float32):
    k = jax.random.split(key, 4)
    return {"enc": {"dense_0": {"kernel": jax.random.normal(k[0], (5, 3), dtype), "bias": jax.random.normal(k[1], (3,), dtype)}},
            "head": (jax.random.normal(k[2], (3, 2), dtype), jax.random.normal(k[3], (), dtype))}


def _bits_equal(a, b) -> bool:
    same = jax.tree_util.tree_map(lambda x, y: x.dtype == y.dtype and x.shape == y.shape and bool(jnp.array_equal(x, y)), a, b)
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b) and all(jax.tree_util.tree_leaves(same))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("tau", [5e-3, 0.3, 1.0])
def test_update_target_params_is_the_old_polyak_bit_for_bit(tau, dtype):
    for seed in range(3):
        params, target = _random_tree(jax.random.key(2 * seed), dtype), _random_tree(jax.random.key(2 * seed + 1), dtype)
        expected = _old_polyak(params, target, tau)
        assert _bits_equal(TargetNetworkAPI.update_target_params(params, target, tau), expected)
        jitted = jax.jit(TargetNetworkAPI.update_target_params, static_argnums=2)(params, target, tau)
        assert _bits_equal(jitted, jax.jit(_old_polyak, static_argnums=2)(params, target, tau))


def _batch(rng, n=8, act_dim=None):
    b = {Columns.OBS: rng.normal(size=(n, 4)).astype(np.float32), Columns.NEXT_OBS: rng.normal(size=(n, 4)).astype(np.float32),
         Columns.REWARDS: rng.normal(size=(n,)).astype(np.float32), Columns.TERMINATEDS: rng.random(n) < 0.2}
    b[Columns.ACTIONS] = (rng.integers(0, 2, n) if act_dim is None
                          else rng.uniform(-1, 1, (n, act_dim)).astype(np.float32))
    return b


@pytest.mark.parametrize("tau,freq", [(1.0, 2), (0.4, 3), (0.4, 1)])
def test_dqn_target_updates_match_the_old_gate_bit_for_bit(tau, freq):
    """RLlib's period: the target moves after updates freq, 2·freq, ... (1-based), never before."""
    m = DefaultDQNRLModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Discrete(2),
                           model_config={"fcnet_hiddens": [8]})
    cfg = DQNConfig()
    cfg.tau, cfg.target_network_update_freq = tau, freq
    learner = DQNLearner(m, cfg)
    update = jax.jit(learner.update)
    state, rng = learner.init(m.init(jax.random.key(0))), np.random.default_rng(0)
    moved = []
    for n in range(1, 7):
        new = update(state, _batch(rng))[0]
        assert _bits_equal(new.target_params, jax.jit(_old_gated, static_argnums=(2, 4))(
            new.params, state.target_params, tau, new.num_updates, freq))
        moved.append(not _bits_equal(new.target_params, state.target_params))
        state = new
    assert moved == [n % freq == 0 for n in range(1, 7)]


@pytest.mark.parametrize("freq", [0, 1, 3])
def test_sac_target_updates_match_the_old_gate_bit_for_bit(freq):
    act = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    m = DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=act, model_config={"fcnet_hiddens": [8]})
    cfg = SACConfig()
    cfg.target_network_update_freq = freq
    learner = SACLearner(m, cfg)
    update = jax.jit(learner.update)
    state, rng = learner.init(m.init(jax.random.key(0))), np.random.default_rng(0)
    for n in range(1, 5):
        new = update(state, _batch(rng, act_dim=1), jax.random.key(n))[0]
        expected = jax.jit(_old_gated, static_argnums=(2, 4))(new.params, state.target_params, cfg.tau, new.num_updates,
                                                              max(1, freq))
        assert _bits_equal(new.target_params, expected)
        state = new


@pytest.mark.parametrize("shape", [(1,), (3,), (2, 3), (84, 84, 4)])
def test_flatdim_is_the_old_box_size(shape):
    box = gym.spaces.Box(-1.0, 1.0, shape, np.float32)
    assert flatdim(box) == int(np.prod(shape))
    if len(shape) == 1:
        assert DiagGaussian.required_input_dim(box) == SquashedGaussian.required_input_dim(box) == 2 * shape[0]


def test_sac_q_encoder_input_is_obs_plus_action_width():
    act = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    m = DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=act, model_config={"fcnet_hiddens": [8]})
    p = m.init(jax.random.key(0))
    first = [x for x in jax.tree_util.tree_leaves(p["qf_encoder"]) if x.ndim == 2][0]
    assert first.shape == (4 + 3, 8)


def _dqn_with_q(q_bias, eps):
    """A dueling DQN module whose Q is `q_bias - mean(q_bias)` for every observation."""
    n = len(q_bias)
    m = DefaultDQNRLModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Discrete(n, start=3),
                           model_config={"fcnet_hiddens": [8], "epsilon": [[0, eps]]})
    params = jax.tree_util.tree_map(jnp.zeros_like, m.init(jax.random.key(0)))
    path = [p for p, x in jax.tree_util.tree_leaves_with_path(params["af"]) if x.shape == (n,)][0]
    params["af"] = jax.tree_util.tree_map_with_path(lambda p, x: jnp.asarray(q_bias, x.dtype) if p == path else x, params["af"])
    return m, params


def test_dqn_epsilon_greedy_frequencies_are_rllibs():
    """With probability eps a uniform action (the greedy one included): greedy 1 - eps + eps/4."""
    m, params = _dqn_with_q([0.0, 2.0, 1.0, -1.0], 0.3)
    obs = np.zeros((20_000, 4), np.float32)
    acts = np.asarray(m.forward_exploration(params, {Columns.OBS: obs}, jax.random.key(7), t=0)[Columns.ACTIONS]) - 3
    freq = np.bincount(acts, minlength=4) / len(acts)
    expected = np.array([0.3 / 4, 1 - 0.3 + 0.3 / 4, 0.3 / 4, 0.3 / 4])
    assert np.all(np.abs(freq - expected) < 3 * np.sqrt(expected * (1 - expected) / len(acts))), freq
    assert np.allclose(distrax.EpsilonGreedy(jnp.array([0.0, 2.0, 1.0, -1.0]), 0.3).probs, expected)  # same without ties


def test_dqn_greedy_ties_take_the_first_action_unlike_distrax():
    """Why the epsilon-greedy stays ours: distrax splits tied maxima, RLlib's argmax takes the first."""
    m, params = _dqn_with_q([1.0, 1.0, 0.0], 0.0)
    obs = np.zeros((64, 4), np.float32)
    explored = m.forward_exploration(params, {Columns.OBS: obs}, jax.random.key(0), t=0)[Columns.ACTIONS]
    assert jnp.all(explored == 3) and jnp.all(m.forward_inference(params, {Columns.OBS: obs})[Columns.ACTIONS] == 3)
    assert np.allclose(distrax.EpsilonGreedy(jnp.array([1.0, 1.0, 0.0]), 0.0).probs, [0.5, 0.5, 0.0])
