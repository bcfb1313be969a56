"""SAC: the default module (squashed Gaussian, twin Q), the learner's APIs, learning Pendulum."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns
from jaxrl_modules.algorithms.sac import DefaultSACRLModule, SACConfig
from jaxrl_modules.apis import QNetAPI, TargetNetworkAPI

from conftest import CARTPOLE_OBS

ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def test_sac_module_acts_in_unit_box_and_twin_q():
    """As RLlib's, the policy acts in [-1, 1]; the env runners unsquash to the Box's [-2, 2]."""
    m = DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=ACT, model_config={"fcnet_hiddens": [16]})
    p = m.init(jax.random.key(0))
    assert {"pi_encoder", "pi", "qf_encoder", "qf", "qf_twin_encoder", "qf_twin"} == set(p)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    out = m.forward_exploration(p, {Columns.OBS: obs}, jax.random.key(1))
    assert out[Columns.ACTIONS].shape == (64, 1) and jnp.all(jnp.abs(out[Columns.ACTIONS]) <= 1.0)
    det = m.forward_inference(p, {Columns.OBS: obs})[Columns.ACTIONS]
    mean = out[Columns.ACTION_DIST_INPUTS][:, :1]
    assert jnp.allclose(det, jnp.tanh(mean), atol=1e-5)
    q = m.compute_q_values(p, {Columns.OBS: obs, Columns.ACTIONS: det})["qf_preds"]
    assert q.shape == (64,)
    inf = DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=ACT, inference_only=True,
                             model_config={"fcnet_hiddens": [16]})
    assert set(inf.init(jax.random.key(0))) == {"pi_encoder", "pi"}
    assert set(m.inference_params(p)) == {"pi_encoder", "pi"}
    with pytest.raises(ValueError, match="1-D float Box"):
        DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Discrete(2))


def test_sac_config_defaults():
    c = SACConfig()
    assert (c.twin_q, c.tau, c.initial_alpha, c.target_entropy) == (True, 5e-3, 1.0, "auto")
    assert (c.actor_lr, c.critic_lr, c.alpha_lr, c.num_steps_sampled_before_learning_starts) == (3e-5, 3e-4, 3e-4, 1500)
    assert c.get_default_learner_class().rl_module_required_apis() == [QNetAPI, TargetNetworkAPI]


SAC_PENDULUM = dict(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, train_batch_size_per_learner=256,
                    num_steps_sampled_before_learning_starts=1000, replay_buffer_config={"capacity": 50000})


@pytest.mark.slow
def test_sac_all_in_jit_solves_pendulum():
    config = (SACConfig().environment("gymnax:Pendulum-v1").env_runners(num_envs_per_env_runner=1, rollout_fragment_length=1)
              .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"}).training(**SAC_PENDULUM))
    _, metrics = jax.jit(config.build_train_fn(num_iterations=20000))(jax.random.key(0))
    returns = np.asarray(metrics["episode_return_mean"])
    assert np.nanmean(returns[:2000]) < -1000
    assert np.nanmean(returns[-5000:]) >= -200, np.nanmean(returns[-5000:])
    assert np.asarray(metrics["alpha"])[-1] < 0.5  # the temperature is learned


def test_sac_host_loop_runs_on_gymnasium_pendulum():
    algo = (SACConfig().environment("Pendulum-v1").env_runners(num_envs_per_env_runner=2)
            .rl_module(model_config={"fcnet_hiddens": [16]})
            .training(**{**SAC_PENDULUM, "num_steps_sampled_before_learning_starts": 200})).build()
    result = algo.train()
    assert result["num_env_steps_sampled_lifetime"] == 1000
    assert np.isfinite(result["learners"]["default_policy"]["critic_loss"])
    assert result["env_runners"]["num_episodes"] == 4  # 200-step episodes on 2 envs


def test_sac_host_save_restore_and_module_access(tmp_path):
    def build():
        return (SACConfig().environment("Pendulum-v1").env_runners(num_envs_per_env_runner=1)
                .rl_module(model_config={"fcnet_hiddens": [8]})
                .training(**{**SAC_PENDULUM, "num_steps_sampled_before_learning_starts": 100,
                             "replay_buffer_config": {"capacity": 2000}})).build()

    algo = build()
    algo.train()
    algo.save_to_path(tmp_path / "sac")
    fresh = build()
    fresh.restore_from_path(tmp_path / "sac")
    for a, b in zip(jax.tree_util.tree_leaves(algo.get_params()), jax.tree_util.tree_leaves(fresh.get_params())):
        assert np.array_equal(a, b)
    assert fresh.env_steps == 1000 and isinstance(fresh.get_module(), DefaultSACRLModule)
    assert np.isfinite(fresh.train()["learners"]["default_policy"]["actor_loss"])
    assert len(fresh.evaluate(episodes=1)["env_runners"]["episode_returns"]) == 1
