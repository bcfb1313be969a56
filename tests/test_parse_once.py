"""Model configs are parsed and validated once (issue 11 point 3): every default module normalises its
`model_config` into its `model_config_class` when it is constructed (RLModule.__post_init__), validate()
checks the values with that same class, config.json holds the typed config's fields, and
AlgorithmConfig.copy() is deep."""

from __future__ import annotations

import json

import jax
import pytest

from jaxrl_modules import Columns, DefaultModelConfig, RLModuleSpec
from jaxrl_modules.algorithms.bc import DefaultBCRLModule
from jaxrl_modules.algorithms.dqn import DQNConfig, DQNModelConfig
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig
from jaxrl_modules.algorithms.sac import SACConfig
from jaxrl_modules.cli.run_folder import resolved_config
from jaxrl_modules.envs import MultiAgentCartPole

from conftest import CARTPOLE_ACT, CARTPOLE_OBS, raises_naming

TINY = {"fcnet_hiddens": [8]}
FAST_PPO = dict(train_batch_size_per_learner=32, minibatch_size=16, num_epochs=1)


@pytest.fixture
def from_any_calls(monkeypatch):
    """The classes `DefaultModelConfig.from_any` (and its subclasses') is called on, in order."""
    calls = []
    original = DefaultModelConfig.from_any.__func__

    def counting(cls, config, extra_keys=()):
        calls.append(cls.__name__)
        return original(cls, config, extra_keys)

    monkeypatch.setattr(DefaultModelConfig, "from_any", classmethod(counting))
    return calls


def test_ppo_build_parses_once_per_module_and_never_again(from_any_calls):
    algo = PPOConfig().environment("CartPole-v1").rl_module(model_config=TINY).training(**FAST_PPO).build()
    try:
        # validate() checks the merged config once; the one module parses it once when it is constructed.
        assert from_any_calls == ["DefaultModelConfig"] * 2, from_any_calls
        assert isinstance(algo.get_module().model_config, DefaultModelConfig)
        from_any_calls.clear()
        module = algo.get_module()
        params = module.init(jax.random.key(0))
        obs = jax.numpy.zeros((2,) + CARTPOLE_OBS.shape)
        module.forward_exploration(params, {Columns.OBS: obs}, jax.random.key(1))
        module.forward_inference(params, {Columns.OBS: obs})
        module.clone(inference_only=True)  # a clone carries the typed config
        algo.train()
        assert from_any_calls == [], from_any_calls
    finally:
        algo.stop()


def test_dqn_build_parses_with_its_own_class(from_any_calls):
    algo = (DQNConfig().environment("CartPole-v1").rl_module(model_config=TINY)
            .training(train_batch_size_per_learner=8, replay_buffer_config={"capacity": 64})).build()
    try:
        assert from_any_calls == ["DQNModelConfig"] * 2, from_any_calls  # validate(), then the module
        assert isinstance(algo.get_module().model_config, DQNModelConfig)
    finally:
        algo.stop()


def test_multi_agent_build_parses_once_per_module(from_any_calls):
    algo = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
            .rl_module(model_config=TINY).training(**FAST_PPO)).build()
    try:
        # validate() leaves sub-modules to check their own configs: one parse per module.
        assert from_any_calls == ["DefaultModelConfig"] * 2, from_any_calls
    finally:
        algo.stop()


def test_module_spec_build_parses_once(from_any_calls):
    for cls in (DefaultPPORLModule, DefaultBCRLModule):
        from_any_calls.clear()
        module = RLModuleSpec(cls, CARTPOLE_OBS, CARTPOLE_ACT, model_config=TINY).build()
        assert from_any_calls == ["DefaultModelConfig"], (cls, from_any_calls)
        assert module.config() is module.model_config and module.config().fcnet_hiddens == [8]
        module.init(jax.random.key(0))
        assert from_any_calls == ["DefaultModelConfig"], (cls, from_any_calls)


def test_ppo_module_refuses_a_bad_model_field_at_construction():
    spec = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT,
                        model_config={**TINY, "use_lstm": True, "lstm_use_prev_action": True})
    raises_naming(ValueError, spec.build, "lstm_use_prev_action", "False (the default)", "True")
    spec = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config={"fcnet_hiddenz": [8]})
    raises_naming(ValueError, spec.build, "'fcnet_hiddenz'", "did you mean 'fcnet_hiddens'")
    spec = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config={"fcnet_hiddens": [0]})
    with pytest.raises((TypeError, ValueError), match="fcnet_hiddens"):
        spec.build()


@pytest.mark.parametrize("epsilon,got", [([[0, 2.0]], "got 2.0"), ([[0, -0.5], [100, 0.1]], "got -0.5"),
                                         ("lots", "got 'lots'"), (1.5, "got 1.5")])
def test_validate_catches_bad_dqn_epsilon_in_model_config(epsilon, got):
    """Before, validate() checked only the key names of DQN's model config; the values failed at build."""
    config = DQNConfig().environment("CartPole-v1").rl_module(model_config={**TINY, "epsilon": epsilon})
    raises_naming((TypeError, ValueError), config.validate, "epsilon", "in [0, 1]", got)


def test_validate_catches_bad_dqn_flag_in_model_config():
    config = DQNConfig().environment("CartPole-v1").rl_module(model_config={**TINY, "dueling": "no"})
    raises_naming(TypeError, config.validate, "dueling", "a bool", "'no'")


def test_config_json_model_config_holds_the_typed_fields():
    config = DQNConfig().environment("CartPole-v1").rl_module(model_config=TINY)
    data = json.loads(json.dumps(resolved_config(config)))
    model = data["model_config"]
    assert model["fcnet_hiddens"] == [8]
    assert model["double_q"] is True and model["dueling"] is True
    assert model["epsilon"] == [[0, 1.0], [10000, 0.05]]
    config = DQNConfig().environment("CartPole-v1").rl_module(model_config={**TINY, "dueling": False, "epsilon": 0.1})
    model = json.loads(json.dumps(resolved_config(config)))["model_config"]
    assert model["dueling"] is False and model["double_q"] is True and model["epsilon"] == [[0, 0.1]]
    model = json.loads(json.dumps(resolved_config(SACConfig().environment("Pendulum-v1"))))["model_config"]
    assert model["twin_q"] is True


def test_copy_is_deep():
    config = (DQNConfig().environment("CartPole-v1", env_config={"opts": [1, 2]})
              .rl_module(model_config={"fcnet_hiddens": [8, 8]})
              .training(replay_buffer_config={"capacity": 64})
              .multi_agent(policies={"p0", "p1"}))
    copy = config.copy()
    copy.model_config["fcnet_hiddens"].append(4)
    copy.model_config["extra"] = 1
    copy.env_config["opts"].append(3)
    copy.replay_buffer_config["capacity"] = 1
    copy.policies.add("p2")
    assert config.model_config == {"fcnet_hiddens": [8, 8]}
    assert config.env_config == {"opts": [1, 2]}
    assert config.replay_buffer_config["capacity"] == 64
    assert config.policies == {"p0", "p1"}
    for key in ("model_config", "env_config", "replay_buffer_config", "policies"):
        assert getattr(copy, key) is not getattr(config, key), key
