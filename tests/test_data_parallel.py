"""`learners(num_learners=N)`: data-parallel learners over a `jax.sharding.Mesh`.

The suite's own process has one CPU device, so the N-device checks run in a subprocess that emulates
4 (`XLA_FLAGS=--xla_force_host_platform_device_count=4`, set before jax is imported):
`tests/data_parallel_worker.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxrl_modules.algorithms.data_parallel import make_data_parallel, resolve_num_learners
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.ppo import PPOConfig

from conftest import raises_naming

TESTS = Path(__file__).parent


def run_worker(*args: str, devices: int = 4, timeout: int = 400) -> dict:
    """The JSON line `tests/data_parallel_worker.py args...` prints, run with `devices` emulated CPU devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(TESTS / "data_parallel_worker.py"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_n_learners_update_equals_one_learner_update():
    """For one global batch, 3 updates on 4 devices (batch and minibatches split over them, gradients
    all-reduced inside the compiled update) give the params, optimizer state and targets of 3 updates on
    one device, up to float reassociation: PPO, DQN, SAC, BC and 2 stacked PPO policies (one vmapped update)."""
    out = run_worker("4", "PPO", "DQN", "SAC", "BC", "STACKED")
    assert out["device_count"] == 4
    learners = {"PPO": "PPOLearner", "DQN": "DQNLearner", "SAC": "SACLearner", "BC": "BCLearner",
                "STACKED": "StackedPPOLearner"}
    for algo, learner in learners.items():
        got = out[algo]
        assert got["learner"] == learner
        assert got["max_diff"] < 1e-5, (algo, got)  # the whole learner state, every float leaf
        assert got["params_moved"] > 1e-4, (algo, got)  # the updates did change the params
        assert got["devices"] == 4 and got["replicated"], (algo, got)  # params replicated on all 4 learners
        assert got["all_reduce"], (algo, got)  # the compiled update averages across devices


@pytest.mark.slow
def test_sharded_all_in_jit_ppo_solves_cartpole_like_one_device():
    """build_train_fn with 4 learners (each device steps 2 of the 8 envs and learns on their rows) solves
    CartPole within the env-step budget one device needs, and follows the same run until float
    reassociation makes the two diverge."""
    out = run_worker("solve", "4", "80")
    one, four = np.asarray(out["1"]["returns"]), np.asarray(out["4"]["returns"])
    assert out["4"]["devices"] == 4 and out["1"]["devices"] == 1
    assert out["1"]["env_steps"] == out["4"]["env_steps"] == 80 * 1024
    np.testing.assert_allclose(four[:10], one[:10], rtol=1e-4)  # the same iterations, early on
    for returns in (one, four):
        assert np.nanmean(returns[:5]) < 100
        assert np.nanmax(returns) >= 475, returns  # CartPole-v1's reward threshold, within 80 iterations


def test_settings_that_cannot_split_over_the_learners_are_named():
    """Envs that do not split over the learners, more learners than devices: named; an uneven minibatch
    split is rounded instead, and seeds still vmap."""
    out = run_worker("errors", "4")
    assert out["num_envs"].startswith("ValueError: num_envs_per_env_runner") and "num_learners=4" in out["num_envs"]
    assert out["host_envs"].startswith("ValueError: num_envs_per_env_runner") and "got 5" in out["host_envs"]
    assert out["too_many"].startswith("ValueError: num_learners") and "at most the 4 device" in out["too_many"]
    assert "xla_force_host_platform_device_count=8" in out["too_many"]
    assert out["uneven_minibatches"] is None  # trains: minibatch rows rounded down to a multiple of the learners
    assert out["vmapped_seeds"] is None  # build_train_fn with 4 learners still vmaps over seeds (2 different runs)


def test_num_learners_values():
    """0 and 1 are one learner (no mesh), "auto" every device, a bad value is named."""
    assert PPOConfig().num_learners == 0 and PPOConfig().learner_count() == 1
    for value in (0, 1, "auto"):
        config = PPOConfig().learners(num_learners=value)
        assert config.learner_count() == resolve_num_learners(value) == jax.device_count() == 1
        assert make_data_parallel(config).mesh is None
    raises_naming(ValueError, lambda: PPOConfig().learners(num_learners=-1), "num_learners", "-1")
    raises_naming(TypeError, lambda: PPOConfig().learners(num_learners=2.5), "num_learners", "2.5")
    raises_naming(TypeError, lambda: PPOConfig().learners(num_learners="all"), "num_learners", "'auto'", "all")
    raises_naming(ValueError, lambda: PPOConfig().learners(num_learners=2).build_train_fn(1), "num_learners",
                  "at most the 1 device", "xla_force_host_platform_device_count=2")


def test_batch_sizes_are_per_learner():
    """RLlib's rule: train_batch_size_per_learner is per learner; without it train_batch_size is split."""
    config = PPOConfig().training(train_batch_size=4000)
    assert (config.batch_size(), config.total_batch_size(), config.num_minibatches()) == (4000, 4000, 31)
    config = DQNConfig().training(train_batch_size_per_learner=32)
    assert config.total_batch_size() == 32


def test_distributed_initialize_names_bad_arguments_before_connecting():
    """Bad multi-process arguments are named before jax.distributed tries to connect (which would wait)."""
    from jaxrl_modules import distributed

    raises_naming(ValueError, lambda: distributed.initialize("127.0.0.1:1234", 2), "coordinator", "num_processes",
                  "process_id", "together")
    raises_naming(ValueError, lambda: distributed.initialize("localhost", 2, 0), "coordinator", "HOST:PORT", "'localhost'")
    raises_naming(ValueError, lambda: distributed.initialize("h:99999", 2, 0), "coordinator", "'h:99999'")
    raises_naming(TypeError, lambda: distributed.initialize(1234, 2, 0), "coordinator", "1234")
    raises_naming(ValueError, lambda: distributed.initialize("h:1", 0, 0), "num_processes", "got 0")
    raises_naming(TypeError, lambda: distributed.initialize("h:1", True, 0), "num_processes", "True")
    raises_naming(ValueError, lambda: distributed.initialize("h:1", 2, 2), "process_id", "[0, 1]", "got 2")
    raises_naming(ValueError, lambda: distributed.initialize("h:1", 2, -1), "process_id", "-1")
    assert not jax.distributed.is_initialized()
    assert distributed.is_primary()
    tree = {"a": jax.numpy.ones(3), "k": jax.random.key(0)}
    got = distributed.host_values(tree)  # one process: plain device_get
    assert isinstance(got["a"], np.ndarray) and np.all(got["a"] == 1)
