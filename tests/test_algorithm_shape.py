"""The algorithm layer's shape (issue 11, point 1, first step): the training loop is chosen once, when
an algorithm is built, as a driver object (`algorithms/driver.py`); nothing in `jaxrl_modules/algorithms`
asks afterwards which loop runs (no `mode ==`, no `getattr(..., "mode")`)."""

import ast
import copy
from pathlib import Path

import jax
import pytest

import jaxrl_modules
from jaxrl_modules.algorithms.bc.driver import OfflineDriver
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.jit_driver import IterationDriver, ScannedDriver
from jaxrl_modules.algorithms.host_driver import HostDriver
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.algorithms.ppo.multi_agent_driver import MultiAgentHostDriver

ALGORITHMS = Path(jaxrl_modules.__file__).parent / "algorithms"
PROTOCOL = ("training_step", "evaluate", "params", "with_params", "state", "set_state", "env_info", "stop")
TINY = {"fcnet_hiddens": [4]}


def _mode_tests(path: Path) -> list[str]:
    """Places in `path` that compare a `mode` attribute or read one with getattr."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "mode" for s in sides):
                found.append(f"{path.name}:{node.lineno}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "mode"):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_mode_dispatch_in_the_algorithm_layer():
    files = sorted(ALGORITHMS.rglob("*.py"))
    assert files
    assert [f for f in files if "mode ==" in f.read_text()] == []
    assert [hit for f in files for hit in _mode_tests(f)] == []


@pytest.mark.parametrize("driver", [HostDriver, MultiAgentHostDriver, IterationDriver, ScannedDriver, OfflineDriver])
def test_every_driver_implements_the_protocol(driver):
    assert [name for name in PROTOCOL if not callable(getattr(driver, name, None))] == []


def _ppo(env):
    return (PPOConfig().environment(env).env_runners(num_envs_per_env_runner=2, rollout_fragment_length=8)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=16, minibatch_size=8, num_epochs=1))


@pytest.mark.parametrize("env, driver", [("CartPole-v1", HostDriver), ("gymnax:CartPole-v1", IterationDriver)])
def test_ppo_picks_its_driver_once_by_env_kind(env, driver):
    algo = _ppo(env).build()
    try:
        assert type(algo.driver) is driver and algo.module is algo.driver.module
        assert algo.learner is algo.driver.learner and algo.runner is algo.driver.runner  # read through
        if driver is IterationDriver:
            assert algo.jax_ppo is algo.driver.pieces and algo.train_state is algo.driver.train_state
        else:
            with pytest.raises(AttributeError):
                algo.jax_ppo  # noqa: B018 (no all-in-jit pieces on the host loop)
            assert algo.learner_state is algo.driver.learner_state
        for name in ("no_such_attribute", "state", "with_params"):  # protocol methods are not read through
            with pytest.raises(AttributeError):
                getattr(algo, name)
    finally:
        algo.stop()


def test_a_copied_algorithm_has_its_own_driver_state():
    algo = (DQNConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=1, rollout_fragment_length=1)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=8, replay_buffer_config={"capacity": 64})
            .build())
    assert type(algo.driver) is ScannedDriver and algo.jax_algo is algo.driver.pieces
    assert algo.state is algo.train_state is algo.driver.train_state  # DQN/SAC's all-in-jit state, as before
    twin = copy.copy(algo)
    assert twin.driver is not algo.driver and twin.driver.step is algo.driver.step  # shared jitted closure
    before = algo._state()
    twin._set_state(jax.tree_util.tree_map(lambda x: x, twin._state())._replace(env_steps=before.env_steps + 1))
    assert algo._state() is before
    twin._returns.last = 123.0  # the carried episode_return_mean is the copy's own too
    assert algo._returns.last != 123.0


def test_writing_a_read_through_attribute_reaches_the_driver():
    algo = _ppo("CartPole-v1").build()
    try:
        new_rng = jax.random.key(7)
        algo.rng = new_rng  # what the loop reads: the driver's, not a shadow on the algorithm
        assert algo.driver.rng is new_rng and "rng" not in algo.__dict__
        algo.iteration = 5  # the algorithm's own attribute stays its own
        assert algo.__dict__["iteration"] == 5 and not hasattr(algo.driver, "iteration")
    finally:
        algo.stop()


def test_off_policy_host_set_state_leaves_the_callers_state_as_it_is():
    algo = (DQNConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=1)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=8, replay_buffer_config={"capacity": 64})
            .build())
    try:
        state = algo._state()
        keys = set(state)
        algo._set_state(state)
        algo._set_state(state)  # used to fail: the first call popped "env_steps" out of the caller's dict
        assert set(state) == keys and "env_steps" in keys
    finally:
        algo.stop()


def _off_policy(cls, env, model=TINY):
    return (cls().environment(env).env_runners(num_envs_per_env_runner=1).rl_module(model_config=model)
            .training(train_batch_size_per_learner=8, replay_buffer_config={"capacity": 64}))


@pytest.mark.parametrize("algo_name", ["PPO", "DQN", "SAC"])
def test_each_algorithm_runs_one_learner_class_through_both_generic_loops(algo_name):
    """One skeleton: the host loop (`HostDriver` over a `HostRunner`) and the all-in-jit loop (`JitLoop` over a
    `JaxRunner`) are the same two classes for PPO, DQN and SAC, each with the same learner class, which
    implements the `Learner` protocol the loops call; no algorithm has a loop of its own."""
    from jaxrl_modules.algorithms.jit_loop import JitLoop
    from jaxrl_modules.algorithms.learner import Learner
    from jaxrl_modules.algorithms.runner import HostRunner, JaxRunner
    from jaxrl_modules.algorithms.sac import SACConfig

    if algo_name == "PPO":
        configs = [_ppo("CartPole-v1"), _ppo("gymnax:CartPole-v1")]
    else:
        cls, env = (DQNConfig, "CartPole-v1") if algo_name == "DQN" else (SACConfig, "Pendulum-v1")
        configs = [_off_policy(cls, env), _off_policy(cls, "gymnax:" + env)]
    host, jitted = (c.build() for c in configs)
    try:
        assert type(host.driver) is HostDriver and isinstance(host.runner, HostRunner)
        assert isinstance(jitted.driver.pieces, JitLoop) and isinstance(jitted.runner, JaxRunner)
        assert type(jitted.driver.pieces) in (JitLoop,) and type(jitted.driver) in (IterationDriver, ScannedDriver)
        learners = [host.learner, jitted.learner]
        assert all(isinstance(learner, Learner) for learner in learners)
        assert type(learners[0]) is type(learners[1])
        inner = [getattr(learner, "learner", learner) for learner in learners]  # DQN/SAC: wrapped in a ReplayLearner
        assert type(inner[0]) is type(inner[1]) and type(inner[0]).__name__ == f"{algo_name}Learner"
        for algo in (host, jitted):
            result = algo.train()
            assert result["num_env_steps_sampled_lifetime"] > 0 and result["learners"]["default_policy"]
    finally:
        host.stop()
        jitted.stop()
