"""PPO end to end: learning in the host loop and all-in-jit, vmapped seeds, checkpoints, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns, DefaultModelConfig, RLModule, RLModuleSpec
from jaxrl_modules.algorithms import AlgorithmConfig
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig
from jaxrl_modules.apis import SelfSupervisedLossAPI, ValueFunctionAPI

from ppo_configs import FAST, gymnax_cartpole


def test_required_apis_and_defaults():
    config = PPOConfig()
    assert config.get_default_learner_class().rl_module_required_apis() == [ValueFunctionAPI]
    assert (config.lr, config.lambda_, config.clip_param, config.vf_clip_param) == (5e-5, 1.0, 0.3, 10.0)
    assert (config.num_epochs, config.minibatch_size, config.train_batch_size, config.kl_coeff) == (30, 128, 4000, 0.2)
    assert config.merged_model_config(None) == {"vf_share_layers": False}
    assert config.rl_module(model_config=DefaultModelConfig()).merged_model_config(None).vf_share_layers is True
    assert isinstance(config.api_stack(enable_rl_module_and_learner=True), AlgorithmConfig)


@pytest.mark.slow
def test_all_in_jit_solves_cartpole():
    train = jax.jit(gymnax_cartpole().build_train_fn(num_iterations=900))
    params, metrics = train(jax.random.key(0))
    returns = np.asarray(metrics["episode_return_mean"])
    assert returns.shape == (900,)
    assert np.nanmean(returns[:20]) < 100
    assert np.nanmean(returns[-100:]) >= 450, np.nanmean(returns[-100:])
    assert set(params) == {"actor_encoder", "critic_encoder", "pi", "vf"}
    assert int(metrics["num_env_steps_sampled_lifetime"][-1]) == 900 * 512


@pytest.mark.slow
def test_vmapped_seeds_learn_independently():
    train = gymnax_cartpole().build_train_fn(num_iterations=150)
    params, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(1), 4))
    kernels = params["pi"]["out"]["kernel"]
    assert kernels.shape[0] == 4 and all(not jnp.allclose(kernels[0], kernels[i]) for i in range(1, 4))
    returns = np.asarray(metrics["episode_return_mean"])
    early, late = np.nanmean(returns[:, :10], axis=1), np.nanmean(returns[:, -20:], axis=1)
    assert np.all(late > early + 50), (early, late)


@pytest.mark.slow
def test_host_loop_solves_cartpole():
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=8)
            .rl_module(model_config={"fcnet_hiddens": [64, 64]}).training(**FAST).debugging(seed=0)).build()
    best = 0.0
    for _ in range(180):
        result = algo.train()
        best = result["env_runners"]["episode_return_mean"]
        if best >= 450:
            break
    assert best >= 450, best
    assert result["num_env_steps_sampled_lifetime"] <= 180 * 1024
    assert {"policy_loss", "vf_loss", "entropy", "total_loss"} <= set(result["learners"]["default_policy"])
    assert algo.evaluate(episodes=2)["env_runners"]["episode_return_mean"] > 300


@pytest.mark.slow
def test_pendulum_continuous_actions_improve():
    algo = (PPOConfig().environment("Pendulum-v1").env_runners(num_envs_per_env_runner=16)
            .rl_module(model_config={"fcnet_hiddens": [64, 64]})
            .training(**{**FAST, "gamma": 0.95, "num_epochs": 10, "train_batch_size_per_learner": 2048})
            .debugging(seed=0)).build()
    returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(50)]
    assert returns[-1] > returns[2] + 400, (returns[2], returns[-1])


def test_get_params_is_a_snapshot_and_module_access():
    algo = gymnax_cartpole(train_batch_size_per_learner=128, minibatch_size=64, total_iterations=1).env_runners(
        rollout_fragment_length=32).build()
    before = algo.get_params()
    algo.train()
    after = algo.get_params()
    assert not np.allclose(before["pi"]["out"]["kernel"], after["pi"]["out"]["kernel"])
    assert isinstance(algo.get_module(), DefaultPPORLModule)
    out = algo.get_module().forward_inference(after, {Columns.OBS: np.zeros((1, 4), np.float32)})
    assert out[Columns.ACTIONS].shape == (1,)


@pytest.mark.slow
def test_resume_equals_uninterrupted_all_in_jit(tmp_path):
    def config():
        return gymnax_cartpole(train_batch_size_per_learner=128, minibatch_size=64, total_iterations=4).env_runners(
            rollout_fragment_length=32).debugging(seed=3)

    straight = config().build()
    for _ in range(4):
        straight.train()
    first = config().build()
    first.train(), first.train()
    first.save_to_path(tmp_path / "algo")
    resumed = config().build()
    resumed.restore_from_path(tmp_path / "algo")
    assert resumed.iteration == 2
    results = [resumed.train(), resumed.train()]
    assert results[-1]["training_iteration"] == 4
    for a, b in zip(jax.tree_util.tree_leaves(straight.get_params()), jax.tree_util.tree_leaves(resumed.get_params())):
        assert np.array_equal(a, b)
    for a, b in zip(jax.tree_util.tree_leaves(straight.train_state.learner.opt_state),
                    jax.tree_util.tree_leaves(resumed.train_state.learner.opt_state)):
        assert np.array_equal(a, b)


def test_component_restore_of_a_module_checkpoint(tmp_path):
    config = (PPOConfig().environment("CartPole-v1").rl_module(model_config={"fcnet_hiddens": [8]})
              .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1))
    trained = config.build()
    trained.train()
    module_dir = trained.get_module().save_to_path(tmp_path / "module", trained.get_params())
    fresh = config.build()
    assert not np.allclose(fresh.get_params()["pi"]["out"]["kernel"], trained.get_params()["pi"]["out"]["kernel"])
    fresh.restore_from_path(module_dir, component="learner_group/learner/rl_module/default_policy")
    assert np.array_equal(fresh.get_params()["pi"]["out"]["kernel"], trained.get_params()["pi"]["out"]["kernel"])
    fresh.train()  # the optimizer state still fits the restored params
    fresh.save_to_path(tmp_path / "algo")
    assert (tmp_path / "algo" / "learner_group/learner/rl_module/default_policy/metadata.json").is_file()
    with pytest.raises(ValueError, match="Unknown ModuleID 'p9'"):
        fresh.restore_from_path(module_dir, component="learner_group/learner/rl_module/p9")
    small = PPOConfig().environment("CartPole-v1").rl_module(model_config={"fcnet_hiddens": [4]}).build()
    with pytest.raises(ValueError, match="does not match"):
        small.restore_from_path(module_dir, component="learner_group/learner/rl_module/default_policy")


class NoValueModule(RLModule):
    def setup(self):
        self.pi = nn.Dense(2)

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self.pi(batch[Columns.OBS])}


def test_bad_configs():
    with pytest.raises(ValueError, match="Unknown training setting 'lrr'.*Did you mean 'lr'"):
        PPOConfig().training(lrr=0.1)
    with pytest.raises(TypeError):
        PPOConfig().env_runners(num_env_runnerz=2)
    with pytest.raises(ValueError, match="Unknown environment 'NoSuchEnv-v0'"):
        PPOConfig().environment("NoSuchEnv-v0").build()
    with pytest.raises(ValueError, match="must implement \\['ValueFunctionAPI'\\]"):
        PPOConfig().environment("CartPole-v1").rl_module(rl_module_spec=RLModuleSpec(NoValueModule)).build()
    with pytest.raises(ValueError, match="num_envs_per_env_runner"):
        PPOConfig().env_runners(num_envs_per_env_runner=0)
    with pytest.raises(ValueError, match="gymnax"):
        PPOConfig().environment("CartPole-v1").build_train_fn(3)


class ShrinkingModule(DefaultPPORLModule):
    """A PPO module with an extra parameter that only its self-supervised loss touches."""

    def setup(self):
        super().setup()
        self.extra = self.param("extra", lambda key: jnp.full((3,), 5.0))

    def compute_self_supervised_loss(self, batch, fwd_out):
        return jnp.sum(self.extra ** 2)


class SelfSupervised(ShrinkingModule, SelfSupervisedLossAPI):
    pass


@pytest.mark.parametrize("cls,moves", [(SelfSupervised, True), (ShrinkingModule, False)])
def test_self_supervised_loss_is_added(cls, moves):
    algo = (PPOConfig().environment("CartPole-v1").rl_module(
        rl_module_spec=RLModuleSpec(cls, model_config={"fcnet_hiddens": [8]}))
        .training(lr=1e-2, train_batch_size_per_learner=64, minibatch_size=32, num_epochs=2)).build()
    assert np.allclose(algo.get_params()["extra"], 5.0)
    algo.train()
    extra = algo.get_params()["extra"]
    assert np.all(extra < 4.97) if moves else np.allclose(extra, 5.0)  # 4 Adam steps of 1e-2 each


def test_connector_and_registered_env_creator():
    import gymnasium as gym

    from jaxrl_modules import register_env
    from jaxrl_modules.connectors import FlattenObservations

    register_env("frozen_lake_small", lambda cfg: gym.make("FrozenLake-v1", map_name=cfg["map"]))
    algo = (PPOConfig().environment("frozen_lake_small", env_config={"map": "4x4"})
            .env_runners(num_envs_per_env_runner=2, env_to_module_connector=lambda env: FlattenObservations())
            .rl_module(model_config={"fcnet_hiddens": [8]})
            .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)).build()
    assert algo.get_module().observation_space.shape == (16,)  # one-hot of Discrete(16)
    result = algo.train()
    assert result["num_env_steps_sampled_lifetime"] == 64
