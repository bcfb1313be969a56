"""The acting path (forward_exploration / forward_inference), as a host loop calls it once per
env step: after the first call of a shape it is the bare compiled call (no re-trace, the
learner-only params dropped before the call), and every check still runs for a new shape, so
a bad batch after a good one raises exactly what it raises on a fresh module."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns, DefaultModelConfig
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule

from conftest import CARTPOLE_ACT, CARTPOLE_OBS

pytestmark = pytest.mark.usefixtures("fast_compiles")

CONFIG = DefaultModelConfig(fcnet_hiddens=[8])


def _ppo(**kwargs):
    return DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=CONFIG, **kwargs)


def _obs(i, b=3):
    return np.random.default_rng(i).normal(size=(b, 4)).astype(np.float32)


def test_repeated_acting_calls_reuse_one_compile():
    module = _ppo()
    learner_params = module.init(jax.random.key(0))
    acting_params = {k: v for k, v in learner_params.items() if k != "vf"}  # what an inference_only module holds
    explore = module._acting_call("exploration", True)[0]
    infer = module._acting_call("inference", False)[0]
    for i in range(6):
        params = learner_params if i % 2 else acting_params
        out = module.forward_exploration(params, {Columns.OBS: _obs(i)}, jax.random.key(i))
        assert out[Columns.ACTIONS].shape == (3,) and out[Columns.ACTION_LOGP].shape == (3,)
        module.forward_inference(params, {Columns.OBS: _obs(i)})
    # Full and inference-only params reach the compiled function as one structure: the critic is
    # dropped before the call, so it is neither a second compile nor a leaf passed per call.
    assert explore._cache_size() == 1 and infer._cache_size() == 1
    module.forward_exploration(learner_params, {Columns.OBS: _obs(0, b=5)}, jax.random.key(0))
    assert explore._cache_size() == 2  # a new batch size is a new shape: traced (and checked) once


def _bad_calls(p):
    """Bad inputs with the good call's batch size, each raising at the trace its new structure needs."""
    good = {Columns.OBS: _obs(0)}
    return {
        "obs_int_dtype": lambda m: m.forward_exploration(p, {Columns.OBS: _obs(0).astype(np.int32)}, jax.random.key(1)),
        "obs_wrong_width": lambda m: m.forward_exploration(p, {Columns.OBS: np.zeros((3, 5), np.float32)},
                                                           jax.random.key(1)),
        "obs_without_batch_axis": lambda m: m.forward_inference(p, {Columns.OBS: np.zeros(4, np.float32)}),
        "obs_missing": lambda m: m.forward_exploration(p, {"observations": _obs(0)}, jax.random.key(1)),
        "batch_not_a_dict": lambda m: m.forward_exploration(p, _obs(0), jax.random.key(1)),
        "rng_none": lambda m: m.forward_exploration(p, good, None),
        "rng_int_seed": lambda m: m.forward_exploration(p, good, 3),
        "rng_float_array": lambda m: m.forward_inference(p, good, np.zeros(2, np.float32)),
        "params_leaf_missing": lambda m: m.forward_exploration({**p, "pi": {"out": {"bias": p["pi"]["out"]["bias"]}}},
                                                               good, jax.random.key(1)),
        "params_leaf_shape": lambda m: m.forward_inference(
            {**p, "pi": {"out": {**p["pi"]["out"], "kernel": jnp.zeros((8, 3))}}}, good),
        "params_not_a_dict": lambda m: m.forward_exploration(list(p.values()), good, jax.random.key(1)),
    }


def _error(fn, module):
    with pytest.raises((ValueError, TypeError)) as info:
        fn(module)
    return type(info.value), str(info.value)


def test_bad_inputs_after_a_cached_call_raise_as_on_a_fresh_module():
    warm = _ppo()
    params = warm.init(jax.random.key(0))
    good = {Columns.OBS: _obs(0)}
    first = warm.forward_exploration(params, good, jax.random.key(1))
    warm.forward_inference(params, good)
    for name, call in _bad_calls(params).items():
        expected = _error(call, _ppo())
        assert _error(call, warm) == expected, name
        assert _error(call, warm) == expected, f"{name}, called again"  # a failed trace is not cached as a success
    again = warm.forward_exploration(params, good, jax.random.key(1))
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(jnp.array_equal, first, again))


@pytest.mark.parametrize("inference_only", [False, True])
def test_recurrent_acting_keeps_the_critic_encoder_it_reads(inference_only):
    """A stateful PPO module with a separate critic encoder carries the critic's LSTM state while
    acting, so acting keeps `critic_encoder` (only `vf` is dropped); the learner's params work."""
    config = DefaultModelConfig(fcnet_hiddens=[4], use_lstm=True, lstm_cell_size=3, vf_share_layers=False)
    learner = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=config)
    params = learner.init(jax.random.key(0))
    module = learner if not inference_only else DefaultPPORLModule(
        observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=config, inference_only=True)
    assert module._non_acting() == frozenset({"vf"})
    state = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (2,) + x.shape), module.get_initial_state())
    batch = {Columns.OBS: np.ones((2, 1, 4), np.float32), Columns.STATE_IN: state}
    out = module.forward_exploration(params, batch, jax.random.key(1))
    assert out[Columns.ACTIONS].shape == (2, 1) and set(out[Columns.STATE_OUT]) == {"actor", "critic"}
    train = learner.forward_train(params, batch)
    assert jnp.allclose(out[Columns.ACTION_DIST_INPUTS], train[Columns.ACTION_DIST_INPUTS], atol=1e-6)
    inf = module.forward_inference(params, batch)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: jnp.allclose(a, b, atol=1e-6), inf[Columns.STATE_OUT], out[Columns.STATE_OUT]))
