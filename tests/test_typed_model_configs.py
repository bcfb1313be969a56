"""Algorithm-specific module settings as typed configs (issue 11.3, DQN/SAC): `DQNModelConfig`
(double_q, dueling, epsilon) and `SACModelConfig` (twin_q) are frozen DefaultModelConfig
subclasses that declare each default once; dicts with these keys still work (RLlib's surface);
typos and bad values are clear errors; a model config is parsed once per build, not per trace."""

import collections
import dataclasses
import os
import re
from pathlib import Path

import flax
import gymnasium as gym
import jax
import numpy as np
import pytest

import jaxrl_modules
from jaxrl_modules import Columns, DefaultModelConfig, RLModule
from jaxrl_modules.algorithms.dqn import DefaultDQNRLModule, DQNConfig, DQNModelConfig
from jaxrl_modules.algorithms.sac import DefaultSACRLModule, SACConfig, SACModelConfig

from conftest import CARTPOLE_ACT, CARTPOLE_OBS, raises_naming

BOX_ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
SMALL = {"fcnet_hiddens": [8]}
PACKAGE = Path(jaxrl_modules.__file__).parent


def dqn(model_config=None):
    return DefaultDQNRLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=model_config)


def sac(model_config=None):
    return DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=BOX_ACT, model_config=model_config)


# ----------------------------------------------------------------- one place per default
def test_each_default_is_declared_once_in_the_source():
    """RLlib's defaults of the auto-included settings appear in one source line: the typed field."""
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py")}
    eps = [p for p, text in sources.items() if re.search(r"10000,\s*0\.05", text)]
    assert [p.relative_to(PACKAGE).as_posix() for p in eps] == ["algorithms/dqn/module.py"]
    for name in ("double_q", "dueling", "twin_q", "epsilon"):
        assigned = [p.relative_to(PACKAGE).as_posix() for p, text in sources.items()
                    if re.search(rf"self\.{name}\s*=\s*(True|False|\[)", text)]
        assert assigned == [], f"{name}'s default is assigned outside its typed config in {assigned}"


def test_algorithm_configs_and_modules_read_the_typed_defaults():
    assert (DQNConfig().double_q, DQNConfig().dueling) == (DQNModelConfig().double_q, DQNModelConfig().dueling) == (True, True)
    assert DQNConfig().epsilon == list(DQNModelConfig().epsilon) == [(0, 1.0), (10000, 0.05)]
    assert SACConfig().twin_q is SACModelConfig().twin_q is True
    # A bare module (no algorithm config) sees the same defaults as the config-built one.
    assert dqn().config() == DQNModelConfig() and sac().config() == SACModelConfig()
    algo = DQNConfig().environment("CartPole-v1").rl_module(model_config=SMALL).build()
    try:
        cfg = algo.get_module().model_config
        assert isinstance(cfg, DQNModelConfig)
        assert cfg.epsilon == DQNModelConfig.field_default("epsilon") and cfg.dueling and cfg.double_q
    finally:
        algo.stop()


def test_field_default_names_an_unknown_field():
    raises_naming(ValueError, lambda: DQNModelConfig.field_default("epsilom"), "name", "a field of DQNModelConfig",
                  "'epsilom'")
    assert DefaultModelConfig.field_default("fcnet_hiddens") == [256, 256]
    DefaultModelConfig.field_default("fcnet_hiddens").append(1)  # a fresh copy each time
    assert DefaultModelConfig.field_default("fcnet_hiddens") == [256, 256]


# ----------------------------------------------------------------- dict input still works
def test_dict_model_configs_become_typed_configs():
    m = dqn({**SMALL, "dueling": False, "double_q": False, "epsilon": 0.2})
    assert isinstance(m.model_config, DQNModelConfig)
    assert (m.model_config.dueling, m.model_config.double_q, m.model_config.epsilon) == (False, False, ((0, 0.2),))
    assert m.model_config.fcnet_hiddens == [8]
    assert "vf" not in m.init(jax.random.key(0))  # dueling=False: no value head
    s = sac({**SMALL, "twin_q": False})
    assert isinstance(s.model_config, SACModelConfig) and not s.model_config.twin_q
    assert set(s.init(jax.random.key(0))) == {"pi_encoder", "pi", "qf_encoder", "qf"}
    assert s.q_param_keys() == ("qf_encoder", "qf")
    # Frozen mappings (flax's), None and plain DefaultModelConfig objects too.
    frozen = dqn(flax.core.FrozenDict({"fcnet_hiddens": (8,), "epsilon": ((0, 1.0), (10, 0.0))}))
    assert frozen.model_config.fcnet_hiddens == [8] and frozen.model_config.epsilon == ((0, 1.0), (10, 0.0))
    assert dqn(None).model_config == DQNModelConfig()
    plain = dqn(DefaultModelConfig(fcnet_hiddens=[8], fcnet_activation="relu"))
    assert plain.model_config == DQNModelConfig(fcnet_hiddens=[8], fcnet_activation="relu")


def test_algorithm_configs_auto_include_the_settings_as_rllib():
    config = DQNConfig().environment("CartPole-v1").training(dueling=False, epsilon=[(0, 0.5)]).rl_module(model_config=SMALL)
    merged = config.merged_model_config()
    assert isinstance(merged, dict) and merged["dueling"] is False and merged["epsilon"] == [[0, 0.5]]
    spec = config.module_spec_for(CARTPOLE_OBS, CARTPOLE_ACT)
    module = spec.build()
    assert (module.model_config.dueling, module.model_config.epsilon, module.model_config.fcnet_hiddens) == (
        False, ((0, 0.5),), [8])
    sac_spec = SACConfig().training(twin_q=False).rl_module(model_config=SMALL).module_spec_for(CARTPOLE_OBS, BOX_ACT)
    assert sac_spec.build().model_config.twin_q is False
    # A DefaultModelConfig object gets the auto-includes too.
    obj = DQNConfig().training(dueling=False).rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[8]))
    assert obj.module_spec_for(CARTPOLE_OBS, CARTPOLE_ACT).build().model_config.dueling is False


def test_a_typed_config_object_and_the_algorithm_config_each_set_what_they_change():
    """Each setting comes from the side that changed it from its default; set differently on
    both sides is an error naming it (a typed field at its default cannot be told from unset)."""
    typed = DQNConfig().training(dueling=False).rl_module(model_config=DQNModelConfig(fcnet_hiddens=[8], epsilon=0.3))
    built = typed.module_spec_for(CARTPOLE_OBS, CARTPOLE_ACT).build().model_config
    assert (built.dueling, built.epsilon, built.double_q) == (False, ((0, 0.3),), True)
    same = DQNConfig().training(epsilon=[[0, 0.3]]).rl_module(model_config=DQNModelConfig(epsilon=0.3))
    assert same.merged_model_config()["epsilon"] == ((0, 0.3),)
    clash = DQNConfig().environment("CartPole-v1").training(epsilon=0.5).rl_module(
        model_config=DQNModelConfig(fcnet_hiddens=[8], epsilon=0.3))
    raises_naming(ValueError, clash.build, "epsilon is set twice", "training(epsilon=[(0, 0.5)])",
                  "DQNModelConfig(epsilon=((0, 0.3),))")
    sac_clash = SACConfig().training(twin_q=False).rl_module(model_config=SACModelConfig(twin_q=False))
    assert sac_clash.merged_model_config()["twin_q"] is False


def test_typed_config_is_frozen_and_hash_free_of_tracers():
    cfg = DQNModelConfig(epsilon=[[0, 1.0], [100, 0.1]])
    assert cfg.epsilon == ((0, 1.0), (100, 0.1))  # normalised: a tuple of (t, v) pairs
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dueling = False  # type: ignore[misc]
    m = dqn(cfg)
    assert m.model_config is cfg and m.clone().model_config is cfg


# ----------------------------------------------------------------- typos and bad values
@pytest.mark.parametrize("make,key,suggestion", [
    (dqn, "duelling", "dueling"), (dqn, "double-q", "double_q"), (dqn, "epsilone", "epsilon"),
    (sac, "twinq", "twin_q"), (sac, "twin_qs", "twin_q"),
])
def test_typos_in_the_algorithm_keys_are_clear_errors(make, key, suggestion):
    raises_naming(ValueError, lambda: make({**SMALL, key: True}), f"unknown model_config key {key!r}",
                  f"did you mean {suggestion!r}")


@pytest.mark.parametrize("make,key,value,exc,expected", [
    (dqn, "dueling", "yes", TypeError, "a bool"),
    (dqn, "double_q", 1, TypeError, "a bool"),
    (dqn, "epsilon", [[0, 2.0]], ValueError, "[0, 1]"),
    (dqn, "epsilon", "0.1", TypeError, "schedule"),
    (dqn, "epsilon", [[10, 1.0], [5, 0.1]], ValueError, "greater than the previous t=10"),
    (sac, "twin_q", "True", TypeError, "a bool"),
])
def test_bad_values_of_the_algorithm_keys_are_clear_errors(make, key, value, exc, expected):
    raises_naming(exc, lambda: make({**SMALL, key: value}), key, expected)


def test_other_algorithms_keys_and_configs_are_refused():
    raises_naming(ValueError, lambda: dqn({"twin_q": True}), "unknown model_config key 'twin_q'", "DQNModelConfig")
    raises_naming(ValueError, lambda: sac({"epsilon": 0.1}), "unknown model_config key 'epsilon'", "SACModelConfig")
    raises_naming(TypeError, lambda: dqn(SACModelConfig()), "model_config", "DQNModelConfig", "SACModelConfig")
    raises_naming(TypeError, lambda: sac([("twin_q", True)]), "model_config", "SACModelConfig", "list")
    # The core config knows no algorithm's keys.
    raises_naming(ValueError, lambda: DefaultModelConfig.from_any({"dueling": True}), "unknown model_config key 'dueling'")


def test_a_typo_through_the_algorithm_config_fails_at_build():
    config = DQNConfig().environment("CartPole-v1").rl_module(model_config={**SMALL, "duelling": False})
    raises_naming(ValueError, config.build, "'duelling'", "did you mean 'dueling'")
    config = DQNConfig().environment("CartPole-v1").rl_module(model_config={**SMALL, "dueling": "no"})
    raises_naming(TypeError, config.build, "dueling", "a bool", "'no'")


# ----------------------------------------------------------------- parsed once per build
@pytest.fixture
def constructions(monkeypatch):
    """Counts model config constructions by class (DefaultModelConfig.__post_init__ runs for every one)."""
    counts = collections.Counter()
    original = DefaultModelConfig.__post_init__

    def counting(self):
        counts[type(self).__name__] += 1
        return original(self)

    monkeypatch.setattr(DefaultModelConfig, "__post_init__", counting)
    return counts


def _batch(rng, n=4, box=False, obs_dim=4):
    b = {Columns.OBS: rng.normal(size=(n, obs_dim)).astype(np.float32),
         Columns.NEXT_OBS: rng.normal(size=(n, obs_dim)).astype(np.float32),
         Columns.REWARDS: rng.normal(size=(n,)).astype(np.float32), Columns.TERMINATEDS: np.zeros(n, bool)}
    b[Columns.ACTIONS] = rng.uniform(-1, 1, (n, 1)).astype(np.float32) if box else rng.integers(0, 2, n)
    return b


@pytest.mark.parametrize("algo", ["DQN", "SAC"])
def test_model_config_is_parsed_once_per_build(algo, constructions):
    typed = {"DQN": "DQNModelConfig", "SAC": "SACModelConfig"}[algo]
    config = {"DQN": DQNConfig().environment("CartPole-v1"), "SAC": SACConfig().environment("Pendulum-v1")}[algo]
    algo_ = config.rl_module(model_config=SMALL).build()
    try:
        # One parse in validate() (the module's own model_config_class checks the values) and one when the
        # module is constructed; none after.
        assert constructions[typed] == 2, dict(constructions)
        constructions.clear()
        # Tracing init, every forward and the learner's update re-runs setup many times: no re-parse.
        module, learner = algo_.get_module(), algo_.learner
        params = module.init(jax.random.key(1))
        batch = _batch(np.random.default_rng(0), box=algo == "SAC", obs_dim=module.observation_space.shape[0])
        module.forward_exploration(params, {Columns.OBS: batch[Columns.OBS]}, jax.random.key(2))
        module.forward_inference(params, {Columns.OBS: batch[Columns.OBS]})
        module.forward_train(params, batch)
        module.compute_q_values(params, batch)
        args = (batch, jax.random.key(3)) if algo == "SAC" else (batch,)
        jax.jit(learner.update)(learner.init(params), *args)
        assert sum(constructions.values()) == 0, dict(constructions)
    finally:
        algo_.stop()


def test_a_directly_built_module_parses_once(constructions):
    m = dqn({**SMALL, "epsilon": 0.1})
    params = m.init(jax.random.key(0))
    m.forward_exploration(params, {Columns.OBS: np.zeros((2, 4), np.float32)}, jax.random.key(1))
    m.forward_target(params, {Columns.OBS: np.zeros((2, 4), np.float32)})
    assert dict(constructions) == {"DQNModelConfig": 1}


# ----------------------------------------------------------------- checkpoints keep the typed config
def test_checkpoints_restore_the_typed_config_also_from_json(tmp_path):
    m = dqn({**SMALL, "epsilon": 0.3, "dueling": False})
    params = m.init(jax.random.key(0))
    m.save_to_path(tmp_path, params)
    restored, _ = RLModule.from_checkpoint(tmp_path)
    assert restored.model_config == m.model_config
    os.remove(tmp_path / "class.pkl")  # the metadata.json fallback
    restored, restored_params = RLModule.from_checkpoint(tmp_path)
    assert isinstance(restored.model_config, DQNModelConfig) and restored.model_config == m.model_config
    assert set(restored_params) == set(params)
