"""`env_runners(num_env_runners=R)`: the single-agent gymnasium host loops (PPO, DQN, SAC) step
`max(1, R) * num_envs_per_env_runner` envs, each in a worker process ("spawn"), closed by `stop()`
and by a failed build; the gymnax and multi-agent loops reject R > 0 at build time."""

import os

import gymnasium as gym
import jax
import numpy as np
import pytest

from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.env_runner import WORKER_CONTEXT, make_vector_env, total_envs
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.envs import MultiAgentCartPole
from jaxrl_modules.envs.registry import register_env

from conftest import raises_naming
from pid_cartpole import PidCartPole

pytestmark = pytest.mark.usefixtures("fast_compiles")


register_env("pid_cartpole", PidCartPole)  # a registered name: workers must see it though they start empty


def _alive(processes):
    return [p for p in processes if p.is_alive()]


def ppo_config(**env_runners):
    return (PPOConfig().environment("pid_cartpole")
            .env_runners(**{"num_env_runners": 2, "num_envs_per_env_runner": 1, **env_runners})
            .rl_module(model_config={"fcnet_hiddens": [8]})
            .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1))


def test_settings_are_kept_and_zero_stays_in_process():
    config = PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=3, num_envs_per_env_runner=2)
    assert config.num_env_runners == 3 and total_envs(config) == 6
    assert total_envs(PPOConfig().env_runners(num_envs_per_env_runner=2)) == 2  # 0 runners: the local one samples
    envs = make_vector_env(PPOConfig().environment("pid_cartpole").env_runners(num_envs_per_env_runner=2))
    try:
        assert isinstance(envs, gym.vector.SyncVectorEnv)
        _, info = envs.reset(seed=0)
        assert set(info["pid"]) == {os.getpid()}
    finally:
        envs.close()
    raises_naming(ValueError, lambda: PPOConfig().env_runners(num_env_runners=-1), "num_env_runners", ">= 0", "-1")


def test_ppo_envs_step_in_worker_processes_and_stop_ends_them():
    algo = ppo_config().build()
    try:
        envs = algo.runner.envs
        assert isinstance(envs, gym.vector.AsyncVectorEnv) and envs.num_envs == 2
        assert {type(p).__name__ for p in envs.processes} == {WORKER_CONTEXT.capitalize() + "Process"}
        _, _, _, _, info = envs.step(np.zeros(2, np.int64))
        pids = set(info["pid"])
        assert len(pids) == 2 and os.getpid() not in pids  # each env in its own, other process
        assert pids == {p.pid for p in envs.processes}
        results = [algo.train() for _ in range(2)]
        # "auto" rollout: the train batch (64) split over 2 runners x 1 env -> 32 steps per env
        assert [r["num_env_steps_sampled_lifetime"] for r in results] == [64, 128]
        assert np.isfinite(results[-1]["learners"]["default_policy"]["total_loss"])
        assert results[-1]["env_runners"]["num_episodes"] >= 1  # 128 random-ish CartPole steps end episodes
        assert len(algo.evaluate(2)["env_runners"]["episode_returns"]) == 2
        processes = list(envs.processes)
        assert len(_alive(processes)) == 2
    finally:
        algo.stop()
    for p in processes:
        p.join(timeout=10)
    assert not _alive(processes)
    algo.stop()  # idempotent


def test_explicit_fragment_length_is_per_env_and_recurrent_modules_train_over_workers():
    lstm = {"fcnet_hiddens": [8], "use_lstm": True, "lstm_cell_size": 4, "max_seq_len": 4}
    algo = ppo_config(num_envs_per_env_runner=2, rollout_fragment_length=8).rl_module(model_config=lstm).build()
    try:
        assert algo.runner.num_envs == 4 and isinstance(algo.runner.envs, gym.vector.AsyncVectorEnv)
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] == 2 * 2 * 8  # 2 runners x 2 envs x 8 steps
        assert np.isfinite(result["learners"]["default_policy"]["total_loss"])
        assert jax.tree_util.tree_leaves(algo.runner.recurrent_state)[0].shape == (4, 4)  # a state per env
    finally:
        algo.stop()


def test_dqn_host_loop_steps_in_workers():
    algo = (DQNConfig().environment("pid_cartpole").env_runners(num_env_runners=2)
            .rl_module(model_config={"fcnet_hiddens": [8]})
            .training(num_steps_sampled_before_learning_starts=64, train_batch_size=16)).build()
    try:
        assert isinstance(algo.envs, gym.vector.AsyncVectorEnv) and algo.envs.num_envs == 2
        _, _, _, _, info = algo.envs.step(np.zeros(2, np.int64))
        assert os.getpid() not in set(info["pid"]) and len(set(info["pid"])) == 2
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] == 1000  # 500 vector steps of 2 envs
        assert np.isfinite(result["env_runners"]["episode_return_mean"])
        processes = list(algo.envs.processes)
    finally:
        algo.stop()
    for p in processes:
        p.join(timeout=10)
    assert not _alive(processes)


def test_a_failed_build_leaves_no_worker_behind(monkeypatch):
    import jaxrl_modules.algorithms.host_driver as ppo_mod  # the single-agent host loop builds the runner

    started = []
    real = ppo_mod.GymEnvRunner

    class Spy(real):
        def __init__(self, config):
            super().__init__(config)
            started.extend(self.envs.processes)

    monkeypatch.setattr(ppo_mod, "GymEnvRunner", Spy)
    # a recurrent module with a rollout that does not split into max_seq_len chunks fails after the workers start
    bad = ppo_config(rollout_fragment_length=6).rl_module(model_config={"fcnet_hiddens": [8], "use_lstm": True,
                                                                         "lstm_cell_size": 4, "max_seq_len": 4})
    raises_naming(ValueError, bad.build, "rollout_fragment_length", "max_seq_len")
    assert len(started) == 2
    for p in started:
        p.join(timeout=10)
    assert not _alive(started)


@pytest.mark.parametrize("config, where", [
    (PPOConfig().environment("gymnax:CartPole-v1"), "all-in-jit gymnax loop"),
    (DQNConfig().environment("gymnax:CartPole-v1"), "all-in-jit gymnax loop"),
    (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2}), "multi-agent host loop"),
])
def test_loops_without_workers_reject_num_env_runners_at_build(config, where):
    config = config.env_runners(num_env_runners=2)
    raises_naming(ValueError, config.build, "num_env_runners=2", where, "num_envs_per_env_runner")
    if where.startswith("all-in-jit"):
        raises_naming(ValueError, lambda: config.build_train_fn(2), "num_env_runners=2", where)


def test_dqn_and_sac_reject_recurrent_modules_clearly():
    from jaxrl_modules.algorithms.sac import SACConfig

    lstm = {"fcnet_hiddens": [8], "use_lstm": True, "lstm_cell_size": 4, "max_seq_len": 4}
    raises_naming(ValueError, DQNConfig().environment("CartPole-v1").rl_module(model_config=lstm).build,
                  "use_lstm", "DQN", "stateless")
    raises_naming(ValueError, DQNConfig().environment("gymnax:CartPole-v1").rl_module(model_config=lstm).build,
                  "use_lstm", "DQN", "stateless")
    raises_naming(ValueError, SACConfig().environment("Pendulum-v1").rl_module(model_config=lstm).build,
                  "use_lstm", "SAC", "stateless")


def test_an_env_a_worker_cannot_build_is_a_clear_error():
    gym.register("ParentOnlyCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv")
    try:  # registered in this process only: a spawned worker does not know the id
        config = PPOConfig().environment("ParentOnlyCartPole-v0").env_runners(num_env_runners=1)
        raises_naming(ValueError, config.build, "worker process", "num_env_runners", "ParentOnlyCartPole-v0",
                      "register_env")
    finally:
        gym.registry.pop("ParentOnlyCartPole-v0")


@pytest.mark.slow
def test_ppo_learns_with_envs_in_two_worker_processes():
    """num_env_runners=2 x num_envs_per_env_runner=4: CartPole's 8 envs each step in a worker process of its
    own (gymnasium's AsyncVectorEnv), and PPO learns from them."""
    from ppo_configs import FAST

    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=2, num_envs_per_env_runner=4)
            .rl_module(model_config={"fcnet_hiddens": [64, 64]}).training(**FAST)).build()
    try:
        envs = algo.runner.envs
        assert isinstance(envs, gym.vector.AsyncVectorEnv) and len({p.pid for p in envs.processes}) == 8
        returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(40)]
    finally:
        algo.stop()
    assert np.nanmean(returns[:3]) < 60
    assert max(returns) >= 300, returns  # random play lasts ~20 steps
