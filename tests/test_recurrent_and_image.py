"""Recurrent and image policies: the LSTM state across episode boundaries, LSTM PPO on a
partially observable CartPole beating its feed-forward twin, and the default CNN on MinAtar."""

import gymnasium as gym
import jax
import pytest
import jax.numpy as jnp
import numpy as np

from jaxrl_modules import Columns, DefaultModelConfig
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig

from conftest import CARTPOLE_ACT, CARTPOLE_OBS

FAST_PPO = dict(lr=1e-3, gamma=0.99, lambda_=0.95, clip_param=0.2, entropy_coeff=0.01, vf_loss_coeff=0.5, grad_clip=0.5,
                num_epochs=4, minibatch_size=256, train_batch_size_per_learner=1024, use_kl_loss=False, vf_clip_param=1e6)


def test_unrolled_sequence_equals_stepping_across_episode_ends():
    m = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                           model_config=DefaultModelConfig(fcnet_hiddens=[8], use_lstm=True, lstm_cell_size=6))
    p = m.init(jax.random.key(0))
    B, T = 3, 7
    obs = np.random.default_rng(0).normal(size=(B, T, 4)).astype(np.float32)
    resets = np.zeros((B, T), bool)
    resets[0, 3] = resets[1, 1] = resets[1, 5] = True  # new episodes start here
    init = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (B,) + x.shape), m.get_initial_state())
    unrolled = m.forward_train(p, {Columns.OBS: obs, Columns.STATE_IN: init, "resets": resets})
    state, steps = init, []
    for t in range(T):  # what an env runner does: reset the state of envs whose episode ended
        state = jax.tree_util.tree_map(lambda s, i: jnp.where(resets[:, t, None], i, s), state, init)
        out = m.forward_exploration(p, {Columns.OBS: obs[:, t:t + 1], Columns.STATE_IN: state}, jax.random.key(t))
        state = out[Columns.STATE_OUT]
        steps.append(out[Columns.ACTION_DIST_INPUTS])
    np.testing.assert_allclose(jnp.concatenate(steps, 1), unrolled[Columns.ACTION_DIST_INPUTS], atol=1e-5)
    no_reset = m.forward_train(p, {Columns.OBS: obs, Columns.STATE_IN: init})
    assert not np.allclose(no_reset[Columns.ACTION_DIST_INPUTS][0, 3:], unrolled[Columns.ACTION_DIST_INPUTS][0, 3:])


class KeepPositions:
    """A connector that drops CartPole's velocities: a partially observable task."""

    input_observation_space = None

    def set_spaces(self, observation_space, action_space):
        self.input_observation_space = observation_space

    @property
    def observation_space(self):
        return gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def __call__(self, obs):
        return obs[..., jnp.array([0, 2])]


def masked_cartpole(model_config):
    return (PPOConfig().environment("gymnax:CartPole-v1")
            .env_runners(num_envs_per_env_runner=16, rollout_fragment_length=64,
                         env_to_module_connector=lambda env: KeepPositions())
            .rl_module(model_config=model_config).training(**FAST_PPO))


@pytest.mark.slow
def test_lstm_beats_its_feed_forward_twin_on_masked_cartpole():
    base = {"fcnet_hiddens": [64], "vf_share_layers": False}
    _, lstm = jax.jit(masked_cartpole({**base, "use_lstm": True, "lstm_cell_size": 64, "max_seq_len": 16})
                      .build_train_fn(num_iterations=300))(jax.random.key(0))
    _, ff = jax.jit(masked_cartpole(base).build_train_fn(num_iterations=300))(jax.random.key(0))
    lstm_late = np.nanmean(np.asarray(lstm["episode_return_mean"])[-60:])
    ff_late = np.nanmean(np.asarray(ff["episode_return_mean"])[-60:])
    assert ff_late < 100, ff_late  # without velocities a memoryless policy stays near 50
    assert lstm_late > 200 and lstm_late > 3 * ff_late, (lstm_late, ff_late)


@pytest.mark.slow
def test_default_cnn_ppo_improves_on_minatar_breakout():
    config = (PPOConfig().environment("gymnax:Breakout-MinAtar")
              .env_runners(num_envs_per_env_runner=16, rollout_fragment_length=64)
              .rl_module(model_config={"head_fcnet_hiddens": [64], "vf_share_layers": True}).training(**FAST_PPO))
    train = config.build_train_fn(num_iterations=50)
    assert train.module.get_initial_state() == {}
    params, metrics = jax.jit(train)(jax.random.key(0))
    assert params["encoder"]["cnn"]["conv_0"]["kernel"].shape == (5, 5, 4, 16)  # RLlib's 10x10 default filters
    returns = np.asarray(metrics["episode_return_mean"])
    early, late = np.nanmean(returns[:10]), np.nanmean(returns[-10:])
    assert late > 2 * early and late > 3, (early, late)
