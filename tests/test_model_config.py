import dataclasses

import jax
import jax.numpy as jnp
import pytest

from jaxrl_modules import Columns, DefaultModelConfig
from jaxrl_modules.model_config import get_activation_fn, get_initializer_fn


def test_columns_have_rllib_values():
    assert Columns.OBS == "obs" and Columns.NEXT_OBS == "new_obs"
    assert Columns.ACTION_DIST_INPUTS == "action_dist_inputs" and Columns.ACTION_LOGP == "action_logp"
    assert Columns.STATE_IN == "state_in" and Columns.LOSS_MASK == "loss_mask"
    assert Columns.VALUE_TARGETS == "value_targets" and Columns.ADVANTAGES == "advantages"


def test_defaults_match_rllib():
    c = DefaultModelConfig()
    assert c.fcnet_hiddens == [256, 256] and c.fcnet_activation == "tanh"
    assert c.conv_filters is None and c.conv_activation == "relu"
    assert c.head_fcnet_hiddens == [] and c.head_fcnet_activation == "relu"
    assert c.free_log_std is False and c.log_std_clip_param == 20.0 and c.vf_share_layers is True
    assert c.use_lstm is False and c.max_seq_len == 20 and c.lstm_cell_size == 256
    assert not c.lstm_use_prev_action and not c.lstm_use_prev_reward
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.fcnet_hiddens = [1]


def test_activations_by_name():
    x = jnp.array([-1.0, 2.0])
    assert jnp.allclose(get_activation_fn("ReLU")(x), jnp.array([0.0, 2.0]))
    assert jnp.allclose(get_activation_fn("swish")(x), jax.nn.silu(x))
    assert get_activation_fn("linear") is None and get_activation_fn(None) is None
    with pytest.raises(ValueError, match="accepted names.*tanh"):
        DefaultModelConfig(fcnet_activation="tanhh")


def test_initializers_by_name_with_kwargs():
    init = get_initializer_fn("orthogonal", {"scale": 0.01})
    w = init(jax.random.key(0), (4, 4))
    assert jnp.allclose(w.T @ w, 1e-4 * jnp.eye(4), atol=1e-6)
    assert jnp.all(get_initializer_fn("zeros")(jax.random.key(0), (3,)) == 0)
    assert get_initializer_fn("xavier_uniform_") is not None  # RLlib's torch spelling
    with pytest.raises(ValueError, match="accepted names.*orthogonal"):
        DefaultModelConfig(fcnet_kernel_initializer="orthogonl")


def test_from_any_reads_frozen_mappings():
    c = DefaultModelConfig.from_any({"fcnet_hiddens": (8,), "custom_key": 1}, extra_keys=("custom_key",))
    assert c.fcnet_hiddens == [8] and c.fcnet_activation == "tanh"
    # Algorithm settings (DQN's epsilon, SAC's twin_q) are fields of the algorithms' own typed configs
    # (tests/test_typed_model_configs.py), not keys the core accepts silently.
    with pytest.raises(ValueError, match="Unknown model_config key 'epsilon'"):
        DefaultModelConfig.from_any({"epsilon": [[0, 0.5]]})
    assert DefaultModelConfig.from_any({"epsilon": [[0, 0.5]]}, extra_keys=("epsilon",)).fcnet_hiddens == [256, 256]
    with pytest.raises(ValueError, match="Unknown model_config key 'fcnet_hidens'.*Did you mean 'fcnet_hiddens'"):
        DefaultModelConfig.from_any({"fcnet_hidens": [8]})
    with pytest.raises(ValueError, match="at least one layer"):
        DefaultModelConfig(fcnet_hiddens=[])
