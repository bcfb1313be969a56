"""Every user error is a ValueError/TypeError naming what was expected and received."""

import gymnasium as gym
import jax
import numpy as np
import pytest

from jaxrl_modules import Columns, DefaultModelConfig, RLModuleSpec
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
from jaxrl_modules.apis import QNetAPI, ValueFunctionAPI, check_required_apis

from conftest import CARTPOLE_ACT, CARTPOLE_OBS


def test_wrong_obs_shape(ppo_module, ppo_params):
    with pytest.raises(ValueError, match=r"shape \(8, 5\); expected \(B, 4\)"):
        ppo_module.forward_inference(ppo_params, {Columns.OBS: np.zeros((8, 5), np.float32)})
    with pytest.raises(ValueError, match=r"shape \(4,\).*leading batch axis"):
        ppo_module.forward_exploration(ppo_params, {Columns.OBS: np.zeros(4, np.float32)}, jax.random.key(0))


def test_wrong_obs_dtype(ppo_module, ppo_params):
    with pytest.raises(TypeError, match="dtype int32; expected a float dtype"):
        ppo_module.forward_inference(ppo_params, {Columns.OBS: np.zeros((2, 4), np.int32)})


def test_missing_obs_and_not_a_dict(ppo_module, ppo_params):
    with pytest.raises(ValueError, match="missing 'obs'; got keys \\['observations'\\]"):
        ppo_module.forward_train(ppo_params, {"observations": np.zeros((2, 4), np.float32)})
    with pytest.raises(TypeError, match="batch dict"):
        ppo_module.forward_inference(ppo_params, np.zeros((2, 4), np.float32))


def test_stateful_module_needs_state_in():
    m = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                           model_config=DefaultModelConfig(fcnet_hiddens=[4], use_lstm=True, lstm_cell_size=4))
    p = m.init(jax.random.key(0))
    with pytest.raises(ValueError, match="state_in"):
        m.forward_inference(p, {Columns.OBS: np.zeros((2, 1, 4), np.float32)})
    with pytest.raises(ValueError, match=r"expected \(B, T, 4\)"):
        m.forward_inference(p, {Columns.OBS: np.zeros((2, 4), np.float32)})


@pytest.mark.parametrize("space,match", [
    (gym.spaces.Discrete(3), "FlattenObservations"),
    (gym.spaces.Box(0, 1, (3, 3)), "1-D or 3-D"),
])
def test_unsupported_observation_spaces(space, match):
    with pytest.raises(ValueError, match=match):
        DefaultPPORLModule(observation_space=space, action_space=CARTPOLE_ACT).init(jax.random.key(0))


def test_unsupported_action_space():
    with pytest.raises(ValueError, match="Unsupported action space"):
        DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Text(3)).init(jax.random.key(0))


def test_unknown_activation_and_initializer_in_dict_config():
    with pytest.raises(ValueError, match="Unknown activation 'relux'"):
        RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config={"fcnet_activation": "relux"}).build().init(
            jax.random.key(0))


def test_required_apis_check(ppo_module):
    check_required_apis(ppo_module, [ValueFunctionAPI])
    with pytest.raises(ValueError, match="module 'p0' .*QNetAPI"):
        check_required_apis(ppo_module, [QNetAPI], module_id="p0")
