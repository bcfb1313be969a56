"""Bad-input matrix for modules: params, batches, recurrent state, rngs, ModuleIDs, specs and
BC data files. Each case asserts the exception type and that the message names the leaf,
setting or file, what was expected and what was received (`raises_naming`)."""

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns, DefaultModelConfig, MultiRLModule, MultiRLModuleSpec, RLModule, RLModuleSpec
from jaxrl_modules.algorithms.bc import load_transitions
from jaxrl_modules.algorithms.bc.offline import check_transitions
from jaxrl_modules.algorithms.dqn import DefaultDQNRLModule
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule

from conftest import CARTPOLE_ACT, CARTPOLE_OBS, raises_naming

TINY = {"fcnet_hiddens": [4]}
OBS = np.zeros((2, 4), np.float32)
KEY = jax.random.key(0)


class DictObsModule(RLModule):
    """A tiny module over a Dict observation space {"a": (2,), "b": (3,)}."""

    def setup(self):
        self.net = nn.Dense(2)

    def _forward(self, batch, **kwargs):
        obs = batch[Columns.OBS]
        return {Columns.ACTION_DIST_INPUTS: self.net(jnp.concatenate([obs["a"], obs["b"]], -1))}


DICT_OBS = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,), np.float32), "b": gym.spaces.Box(-1, 1, (3,), np.float32)})


@pytest.fixture(scope="module")
def env():
    """Everything the cases need, built once: tiny modules and their params."""
    ppo = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=TINY)
    other = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config={"fcnet_hiddens": [8]})
    lstm = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                              model_config=DefaultModelConfig(fcnet_hiddens=[4], use_lstm=True, lstm_cell_size=3))
    dqn = DefaultDQNRLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=TINY)
    dict_obs = DictObsModule(observation_space=DICT_OBS, action_space=CARTPOLE_ACT)
    spec = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config=TINY)
    multi = MultiRLModuleSpec(rl_module_specs={"p0": spec, "p1": spec}).build()
    e = dict(ppo=ppo, other=other, lstm=lstm, dqn=dqn, dict_obs=dict_obs, spec=spec, multi=multi)
    e["p"] = ppo.init(jax.random.key(0))
    e["other_p"] = other.init(jax.random.key(0))
    e["lstm_p"] = lstm.init(jax.random.key(0))
    e["dqn_p"] = dqn.init(jax.random.key(0))
    e["dict_p"] = dict_obs.init(jax.random.key(0))
    e["mp"] = multi.init(jax.random.key(0))
    e["group"] = multi.stacked(["p0", "p1"])
    e["sp"] = multi.stack_params(e["mp"], ["p0", "p1"])
    return e


def _with(tree, path, value):
    """A copy of a nested dict with `tree[path[0]]...[path[-1]] = value` (None deletes)."""
    out = dict(tree)
    if len(path) == 1:
        if value is None:
            del out[path[0]]
        else:
            out[path[0]] = value
        return out
    out[path[0]] = _with(tree[path[0]], path[1:], value)
    return out


def _lstm_batch(state):
    return {Columns.OBS: np.zeros((2, 1, 4), np.float32), Columns.STATE_IN: state}


# ----------------------------------------------------------------------------- params
PARAM_CASES = {
    "another_modules_params": (ValueError, lambda e: e["ppo"].forward_inference(e["other_p"], {Columns.OBS: OBS}),
                               "params['encoder']['mlp']['dense_0']['bias']", "(8,)", "(4,)"),
    "missing_leaf": (ValueError, lambda e: e["ppo"].forward_inference(_with(e["p"], ["pi", "out", "bias"], None),
                                                                      {Columns.OBS: OBS}),
                     "params['pi']['out']['bias']", "missing", "(2,)"),
    "extra_leaf": (ValueError, lambda e: e["ppo"].forward_train(_with(e["p"], ["extra"], np.zeros(3, np.float32)),
                                                                {Columns.OBS: OBS}),
                   "params['extra']", "(3,)", "not part of the module"),
    "int_leaf": (ValueError, lambda e: e["ppo"].forward_inference(
        _with(e["p"], ["pi", "out", "bias"], np.zeros(2, np.int32)), {Columns.OBS: OBS}), "params['pi']['out']['bias']",
        "int32", "float32"),
    "transposed_kernel": (ValueError, lambda e: e["ppo"].forward_exploration(
        _with(e["p"], ["pi", "out", "kernel"], np.zeros((2, 4), np.float32)), {Columns.OBS: OBS}, KEY),
        "params['pi']['out']['kernel']", "(2, 4)", "(4, 2)"),
    "params_none": (TypeError, lambda e: e["ppo"].forward_inference(None, {Columns.OBS: OBS}), "params", "dict",
                    "NoneType"),
    "params_list": (TypeError, lambda e: e["ppo"].forward_train([e["p"]], {Columns.OBS: OBS}), "params", "dict", "list"),
    "train_without_critic": (ValueError, lambda e: e["ppo"].forward_train(e["ppo"].inference_params(e["p"]),
                                                                          {Columns.OBS: OBS}),
                             "forward_train", "params['vf']", "missing"),
    "compute_values_wrong_params": (ValueError, lambda e: e["ppo"].compute_values(e["other_p"], {Columns.OBS: OBS}),
                                    "compute_values", "(8,)", "(4,)"),
    "forward_target_wrong_params": (ValueError, lambda e: e["dqn"].forward_target(e["p"], {Columns.OBS: OBS}),
                                    "forward_target", "params['af']", "missing"),
    "compute_q_values_wrong_dtype": (ValueError, lambda e: e["dqn"].compute_q_values(
        jax.tree_util.tree_map(lambda x: x.astype(jnp.int32), e["dqn_p"]), {Columns.OBS: OBS}), "compute_q_values",
        "int32", "float32"),
    "multi_sub_params": (ValueError, lambda e: e["multi"].forward_inference(
        {**e["mp"], "p1": e["other_p"]}, {"p1": {Columns.OBS: OBS}}), "module 'p1'", "params['p1']", "(8,)", "(4,)"),
    "multi_params_not_dict": (TypeError, lambda e: e["multi"].forward_inference([e["mp"]], {"p0": {Columns.OBS: OBS}}),
                              "params", "dict", "list"),
    "multi_params_lack_id": (ValueError, lambda e: e["multi"].forward_inference(
        {"p0": e["mp"]["p0"]}, {"p1": {Columns.OBS: OBS}}), "params lack", "'p1'", "['p0']"),
    "stacked_params_without_module_axis": (ValueError, lambda e: e["group"].forward_inference(
        e["mp"]["p0"], {Columns.OBS: np.zeros((2, 2, 4), np.float32)}), "stacked params", "(4,)", "(2, 4)",
        "module axis of size 2"),
    "stacked_params_wrong_count": (ValueError, lambda e: e["group"].forward_inference(
        jax.tree_util.tree_map(lambda x: jnp.concatenate([x, x[:1]]), e["sp"]), {Columns.OBS: np.zeros((2, 2, 4), np.float32)}),
        "stacked params", "(3, 4)", "(2, 4)"),
    "stack_params_differing_modules": (ValueError, lambda e: MultiRLModule.stack_params(
        {"a": e["p"], "b": e["other_p"]}, ["a", "b"]), "stack_params", "params['b']", "(8,)", "(4,)"),
    "unstack_params_wrong_axis": (ValueError, lambda e: MultiRLModule.unstack_params(e["sp"], ["a", "b", "c"]),
                                  "stacked params", "(2, 4)", "module axis of size 3"),
}

# ----------------------------------------------------------------------------- batches and state
BATCH_CASES = {
    "dict_obs_batch_sizes_differ": (ValueError, lambda e: e["dict_obs"].forward_inference(
        e["dict_p"], {Columns.OBS: {"a": np.zeros((3, 2), np.float32), "b": np.zeros((5, 3), np.float32)}}),
        "obs['b']", "(5,)", "obs['a']", "(3,)"),
    "dict_obs_missing_key": (ValueError, lambda e: e["dict_obs"].forward_inference(
        e["dict_p"], {Columns.OBS: {"a": np.zeros((3, 2), np.float32)}}), "obs", "['a', 'b']", "['a']"),
    "dict_obs_leaf_shape": (ValueError, lambda e: e["dict_obs"].forward_inference(
        e["dict_p"], {Columns.OBS: {"a": np.zeros((3, 2), np.float32), "b": np.zeros((3, 4), np.float32)}}),
        "obs['b']", "(3, 4)", "(B, 3)"),
    "state_in_missing_key": (ValueError, lambda e: e["lstm"].forward_inference(
        e["lstm_p"], _lstm_batch({"h": np.zeros((2, 3), np.float32)})), "state_in['c']", "state_in['h']"),
    "state_in_wrong_width": (ValueError, lambda e: e["lstm"].forward_inference(
        e["lstm_p"], _lstm_batch({"h": np.zeros((2, 5), np.float32), "c": np.zeros((2, 3), np.float32)})),
        "state_in['h']", "(2, 5)", "(2, 3)"),
    "state_in_wrong_batch": (ValueError, lambda e: e["lstm"].forward_exploration(
        e["lstm_p"], _lstm_batch({"h": np.zeros((4, 3), np.float32), "c": np.zeros((4, 3), np.float32)}), KEY),
        "state_in['c']", "(4, 3)", "B=2"),
    "state_in_extra_key": (ValueError, lambda e: e["lstm"].forward_inference(
        e["lstm_p"], _lstm_batch({"h": np.zeros((2, 3), np.float32), "c": np.zeros((2, 3), np.float32),
                                  "x": np.zeros((2, 3), np.float32)})), "state_in['x']", "get_initial_state"),
    "state_in_not_a_dict": (TypeError, lambda e: e["lstm"].forward_inference(
        e["lstm_p"], _lstm_batch(np.zeros((2, 3), np.float32))), "state_in", "['c', 'h']", "array of shape (2, 3)"),
    "state_in_missing": (ValueError, lambda e: e["lstm"].forward_train(
        e["lstm_p"], {Columns.OBS: np.zeros((2, 1, 4), np.float32)}), "state_in", "stateful", "['obs']"),
    "stacked_batch_without_module_axis": (ValueError, lambda e: e["group"].forward_inference(
        e["sp"], {Columns.OBS: OBS[:1].repeat(3, 0)}), "batch['obs']", "(3, 4)", "module axis of size 2"),
    "batch_not_a_dict": (TypeError, lambda e: e["ppo"].forward_inference(e["p"], OBS), "defaultpporlmodule", "batch dict",
                         "array of shape (2, 4) float32"),
    "stacked_batch_not_a_dict": (ValueError, lambda e: e["group"].forward_inference(e["sp"], OBS), "batch", "'obs'",
                                 "array of shape (2, 4)"),
    "multi_batch_unknown_id": (ValueError, lambda e: e["multi"].forward_inference(e["mp"], {"zz": {Columns.OBS: OBS}}),
                               "unknown moduleid", "'zz'", "'p0'"),
    "multi_batch_obs_shape": (ValueError, lambda e: e["multi"].forward_inference(
        e["mp"], {"p0": {Columns.OBS: np.zeros((2, 5), np.float32)}}), "obs", "(2, 5)", "(B, 4)"),
}

# ----------------------------------------------------------------------------- rngs
RNG_CASES = {
    "int_seed": (TypeError, lambda e: e["ppo"].forward_exploration(e["p"], {Columns.OBS: OBS}, 3), "rng", "int32",
                 "jax.random.key(seed)"),
    "none_for_exploration": (TypeError, lambda e: e["ppo"].forward_exploration(e["p"], {Columns.OBS: OBS}, None),
                             "forward_exploration", "needs an rng", "none"),
    "float_array": (TypeError, lambda e: e["ppo"].forward_exploration(e["p"], {Columns.OBS: OBS}, np.zeros(2, np.float32)),
                    "rng", "float32", "(2,)"),
    "int32_pair": (TypeError, lambda e: e["ppo"].forward_exploration(e["p"], {Columns.OBS: OBS}, np.zeros(2, np.int32)),
                   "rng", "int32", "uint32"),
    "uint32_wrong_length": (TypeError, lambda e: e["ppo"].forward_exploration(
        e["p"], {Columns.OBS: OBS}, np.zeros(3, np.uint32)), "rng", "uint32", "(3,)"),
    "key_array": (ValueError, lambda e: e["ppo"].forward_exploration(
        e["p"], {Columns.OBS: OBS}, jax.random.split(KEY, 3)), "rng", "shape ()", "(3,)"),
    "float_seed_in_inference": (TypeError, lambda e: e["ppo"].forward_inference(e["p"], {Columns.OBS: OBS}, 1.5),
                                "forward_inference", "rng", "float32"),
    "multi_none_for_exploration": (TypeError, lambda e: e["multi"].forward_exploration(
        e["mp"], {"p0": {Columns.OBS: OBS}}, None), "forward_exploration", "needs an rng", "none"),
    "multi_int_seed": (TypeError, lambda e: e["multi"].forward_exploration(e["mp"], {"p0": {Columns.OBS: OBS}}, 7),
                       "rng", "int32", "jax.random.key"),
    "stacked_none_for_exploration": (TypeError, lambda e: e["group"].forward_exploration(
        e["sp"], {Columns.OBS: np.zeros((2, 2, 4), np.float32)}, None), "forward_exploration", "needs an rng", "none"),
    "stacked_int_seed": (TypeError, lambda e: e["group"].forward_exploration(
        e["sp"], {Columns.OBS: np.zeros((2, 2, 4), np.float32)}, 0), "rng", "int32", "jax.random.key"),
    "init_int_seed": (TypeError, lambda e: e["ppo"].init(0), "defaultpporlmodule.init", "jax.random.key(seed)", "int32"),
    "init_none": (TypeError, lambda e: e["ppo"].init(None), "defaultpporlmodule.init", "needs an rng", "none"),
    "multi_init_int_seed": (TypeError, lambda e: e["multi"].init(1), "multirlmodule.init", "jax.random.key(seed)", "int32"),
}

# ----------------------------------------------------------------------------- ModuleIDs and specs
ID_CASES = {
    "spec_non_str_id": (TypeError, lambda e: MultiRLModuleSpec(rl_module_specs={1: e["spec"]}), "rl_module_specs",
                        "str", "int"),
    "spec_empty_id": (ValueError, lambda e: MultiRLModuleSpec(rl_module_specs={"": e["spec"]}), "rl_module_specs",
                      "''", "non-empty"),
    "spec_slash_id": (ValueError, lambda e: MultiRLModuleSpec(rl_module_specs={"a/b": e["spec"]}), "'a/b'", "'/'"),
    "spec_padded_id": (ValueError, lambda e: MultiRLModuleSpec(rl_module_specs={" p0": e["spec"]}), "' p0'",
                       "surrounding spaces"),
    "spec_value_not_a_spec": (TypeError, lambda e: MultiRLModuleSpec(rl_module_specs={"p0": {"module_class": None}}),
                              "rl_module_specs['p0']", "RLModuleSpec", "dict"),
    "spec_inference_only_string": (TypeError, lambda e: MultiRLModuleSpec(rl_module_specs={"p0": e["spec"]},
                                                                          inference_only="yes"),
                                   "inference_only", "bool", "'yes'"),
    "spec_specs_not_a_dict": (ValueError, lambda e: MultiRLModuleSpec(rl_module_specs=[e["spec"]]), "rl_module_specs",
                              "dict", "list"),
    "spec_getitem_unknown": (KeyError, lambda e: MultiRLModuleSpec(rl_module_specs={"p0": e["spec"]})["zz"], "'zz'",
                             "['p0']"),
    "spec_getitem_non_str": (TypeError, lambda e: MultiRLModuleSpec(rl_module_specs=e["spec"])[3], "moduleid", "str",
                             "int"),
    "spec_update_with_single_spec": (TypeError, lambda e: MultiRLModuleSpec(rl_module_specs={"p0": e["spec"]}).update(
        e["spec"]), "update", "MultiRLModuleSpec", "RLModuleSpec"),
    "spec_add_modules_bad_value": (TypeError, lambda e: MultiRLModuleSpec(rl_module_specs={"p0": e["spec"]}).add_modules(
        {"p1": e["ppo"]}), "add_modules", "'p1'", "RLModuleSpec", "DefaultPPORLModule"),
    "spec_from_single_module": (TypeError, lambda e: MultiRLModuleSpec.from_module(e["ppo"]), "from_module",
                                "MultiRLModule", "DefaultPPORLModule"),
    "spec_build_unknown_id": (KeyError, lambda e: MultiRLModuleSpec(rl_module_specs={"p0": e["spec"]}).build("zz"),
                              "'zz'", "['p0']"),
    "multi_direct_non_str_id": (TypeError, lambda e: MultiRLModule(rl_module_specs={2: e["spec"]}).keys(), "moduleid",
                                "str", "int"),
    "multi_getitem_non_str": (TypeError, lambda e: e["multi"][0], "moduleid", "str", "int"),
    "multi_getitem_unknown": (KeyError, lambda e: e["multi"]["zz"], "'zz'", "['p0', 'p1']"),
    "with_module_existing_id": (ValueError, lambda e: e["multi"].with_module("p0", e["ppo"]), "with_module", "'p0'",
                                "already exists", "override=True"),
    "with_module_non_str_id": (TypeError, lambda e: e["multi"].with_module(5, e["ppo"]), "with_module", "str", "int"),
    "with_module_empty_id": (ValueError, lambda e: e["multi"].with_module("", e["ppo"]), "with_module", "''",
                             "non-empty"),
    "with_module_a_multi": (TypeError, lambda e: e["multi"].with_module("p2", e["multi"]), "with_module",
                            "single RLModule", "MultiRLModule"),
    "without_module_unknown": (KeyError, lambda e: e["multi"].without_module("zz"), "'zz'", "['p0', 'p1']"),
    "stacked_duplicate_ids": (ValueError, lambda e: e["multi"].stacked(["p0", "p0"]), "stacked", "distinct", "['p0']"),
    "stacked_unknown_id": (ValueError, lambda e: e["multi"].stacked(["p0", "zz"]), "unknown moduleid", "'zz'",
                           "['p0', 'p1']"),
    "stacked_empty": (ValueError, lambda e: e["multi"].stacked([]), "stacked", "at least one", "empty"),
    "stack_params_unknown_id": (KeyError, lambda e: e["multi"].stack_params(e["mp"], ["p0", "zz"]), "stack_params",
                                "'zz'", "['p0', 'p1']"),
    "stack_params_non_str_id": (TypeError, lambda e: e["multi"].stack_params(e["mp"], ["p0", 1]), "stack_params",
                                "str", "int"),
    "stack_params_ids_as_str": (TypeError, lambda e: e["multi"].stack_params(e["mp"], "p0"), "stack_params",
                                "list of str", "'p0'"),
    "stack_params_duplicates": (ValueError, lambda e: e["multi"].stack_params(e["mp"], ["p1", "p1"]), "stack_params",
                                "distinct", "['p1']"),
    "stack_params_not_a_dict": (TypeError, lambda e: e["multi"].stack_params([e["mp"]["p0"]], ["p0"]), "stack_params",
                                "dict", "list"),
}


def _all_cases():
    for group in (PARAM_CASES, BATCH_CASES, RNG_CASES, ID_CASES):
        for name, (exc, fn, *fragments) in group.items():
            yield pytest.param(exc, fn, fragments, id=name)


@pytest.mark.parametrize("exc,fn,fragments", list(_all_cases()))
def test_bad_module_input(env, exc, fn, fragments):
    raises_naming(exc, lambda: fn(env), *fragments)


# ----------------------------------------------------------------------------- BC data files
def _cols(n=10, **over):
    cols = {Columns.OBS: np.zeros((n, 4), np.float32), Columns.ACTIONS: np.zeros(n, np.int64),
            Columns.REWARDS: np.ones(n, np.float32), Columns.TERMINATEDS: np.zeros(n, bool),
            Columns.TRUNCATEDS: np.zeros(n, bool), Columns.NEXT_OBS: np.zeros((n, 4), np.float32)}
    cols.update(over)
    return {k: v for k, v in cols.items() if v is not None}


def _nan_obs():
    obs = np.zeros((10, 4), np.float32)
    obs[3, 1] = np.nan
    return obs


def _write(tmp_path, cols, name="data.npz"):
    path = tmp_path / name
    np.savez(path, **cols)
    return path


def _npy_named_npz(tmp_path):
    path = tmp_path / "data.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    return path


def _text_file(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("obs,actions\n1,2\n")
    return path


def _two_files(tmp_path, second):
    d = tmp_path / "dir"
    d.mkdir()
    _write(d, _cols(), "a.npz")
    _write(d, second, "b.npz")
    return d


def _empty_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _dir_without_npz(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("x")
    return tmp_path / "d"


BC_FILE_CASES = {
    "missing_actions": (lambda t: _write(t, _cols(actions=None)), "data.npz", "lacks", "['actions']", "['obs', 'actions']",
                        "it has ['new_obs', 'obs'"),
    "obs_of_bools": (lambda t: _write(t, _cols(obs=np.zeros((10, 4), bool))), "data.npz", "'obs'", "bool", "float"),
    "actions_of_strings": (lambda t: _write(t, _cols(actions=np.array(["a"] * 10))), "data.npz", "'actions'", "<u1",
                           "int"),
    "terminateds_of_floats": (lambda t: _write(t, _cols(terminateds=np.zeros(10, np.float32))), "data.npz",
                              "'terminateds'", "float32", "bool"),
    "wrong_length": (lambda t: _write(t, _cols(actions=np.zeros(9, np.int64))), "data.npz", "'actions'", "9 rows",
                     "expected 10"),
    "scalar_column": (lambda t: _write(t, _cols(rewards=np.float32(1.0))), "data.npz", "'rewards'", "scalar",
                      "leading transition axis"),
    "no_rows": (lambda t: _write(t, _cols(n=0)), "data.npz", "no transitions", "(0, 4)"),
    "nan_obs": (lambda t: _write(t, _cols(obs=_nan_obs())), "data.npz", "'obs'", "non-finite", "row 3", "nan"),
    "inf_reward": (lambda t: _write(t, _cols(rewards=np.array([1.0] * 9 + [np.inf], np.float32))), "data.npz",
                   "'rewards'", "row 9", "inf"),
    "not_npz_text": (_text_file, "data.npz", "not a .npz archive", "np.savez"),
    "npy_named_npz": (_npy_named_npz, "data.npz", "not a .npz archive", "ndarray"),
    "empty_directory": (_empty_dir, "empty", "no recorded transitions", "is empty"),
    "directory_without_npz": (_dir_without_npz, "/d'", "no .npz files", "notes.txt"),
    "nothing_there": (lambda t: t / "missing.npz", "missing.npz", "nothing exists there", ".npz"),
    "files_with_other_columns": (lambda t: _two_files(t, _cols(rewards=None)), "b.npz", "a.npz", "same columns"),
    "files_with_other_obs_shape": (lambda t: _two_files(t, _cols(obs=np.zeros((10, 5), np.float32))), "b.npz",
                                   "'obs'", "(5,)", "(4,)"),
}


@pytest.mark.parametrize("make,fragments", [pytest.param(m, f, id=k) for k, (m, *f) in BC_FILE_CASES.items()])
def test_bad_bc_file(tmp_path, make, fragments):
    path = make(tmp_path)
    raises_naming(ValueError, lambda: load_transitions(path), *fragments)


RECORD_CASES = [
    pytest.param(0, "out.npz", ValueError, ("num_steps", "an int >= 1", "got 0"), id="num_steps_0"),
    pytest.param(-5, "out.npz", ValueError, ("num_steps", "an int >= 1", "-5"), id="num_steps_negative"),
    pytest.param("10", "out.npz", TypeError, ("num_steps", "an int >= 1", "'10'"), id="num_steps_str"),
    pytest.param(10.0, "out.npz", TypeError, ("num_steps", "an int >= 1", "10.0"), id="num_steps_float"),
    pytest.param(5, "existing_dir", ValueError, ("existing_dir'", "is a directory", "a .npz file path"), id="path_is_a_dir"),
]


@pytest.mark.parametrize("num_steps,name,exc,fragments", RECORD_CASES)
def test_record_transitions_bad_input(tmp_path, ppo_module, ppo_params, num_steps, name, exc, fragments):
    from jaxrl_modules.algorithms.bc import record_transitions

    (tmp_path / "existing_dir").mkdir()
    raises_naming(exc, lambda: record_transitions(ppo_module, ppo_params, "CartPole-v1", num_steps, tmp_path / name),
                  *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing_dir"]


@pytest.mark.parametrize("kwargs,exc,fragments", [
    ({"seed": -1}, ValueError, ("record_transitions seed", "an int in [0, 4294967295]", "-1")),
    ({"explore": "yes"}, TypeError, ("record_transitions explore", "a bool", "'yes'")),
    ({"normalize_actions": "False"}, TypeError, ("record_transitions normalize_actions", "a bool", "'false'")),
    ({"clip_actions": 1}, TypeError, ("record_transitions clip_actions", "a bool", "1 (int)")),
], ids=["seed_negative", "explore_str", "normalize_actions_str", "clip_actions_int"])
def test_record_transitions_bad_keyword(tmp_path, ppo_module, ppo_params, kwargs, exc, fragments):
    from jaxrl_modules.algorithms.bc import record_transitions

    raises_naming(exc, lambda: record_transitions(ppo_module, ppo_params, "CartPole-v1", 3, tmp_path / "o.npz", **kwargs),
                  *fragments)
    assert not list(tmp_path.iterdir())


def test_record_transitions_returns_the_file_it_wrote(tmp_path, ppo_module, ppo_params):
    from jaxrl_modules.algorithms.bc import record_transitions

    out = record_transitions(ppo_module, ppo_params, "CartPole-v1", 5, tmp_path / "expert")  # np.savez adds .npz
    assert out["path"] == str(tmp_path / "expert.npz") and len(load_transitions(out["path"])[Columns.OBS]) == 5


SPACE_CASES = {
    "action_above_discrete": (gym.spaces.Discrete(2), _cols(actions=np.array([0] * 7 + [5, 0, 0])), "row 7",
                              "action 5", "discrete(2)", "[0, 1]"),
    "action_below_discrete_start": (gym.spaces.Discrete(3, start=1), _cols(), "row 0", "action 0", "[1, 3]"),
    "fractional_discrete_action": (gym.spaces.Discrete(2), _cols(actions=np.full(10, 0.5, np.float32)), "row 0",
                                   "0.5", "whole number"),
    "multidiscrete_outside": (gym.spaces.MultiDiscrete([2, 3]), _cols(actions=np.array([[0, 0]] * 4 + [[1, 3]] * 6)),
                              "row 4", "[1, 3]", "multidiscrete"),
    "action_shape": (gym.spaces.Box(-1, 1, (2,), np.float32), _cols(actions=np.zeros((10, 3), np.float32)),
                     "'actions'", "(3,)", "(2,)"),
}


@pytest.mark.parametrize("space,cols,fragments", [pytest.param(s, c, f, id=k) for k, (s, c, *f) in SPACE_CASES.items()])
def test_bc_actions_outside_the_space(tmp_path, space, cols, fragments):
    path = _write(tmp_path, cols)
    raises_naming(ValueError, lambda: load_transitions(path, action_space=space), "data.npz", *fragments)


def test_bc_obs_shape_against_space_and_file_of_a_bad_row(tmp_path):
    path = _write(tmp_path, _cols())
    raises_naming(ValueError, lambda: load_transitions(path, gym.spaces.Box(-1, 1, (5,), np.float32)), "data.npz",
                  "'obs'", "(4,)", "(5,)")
    d = tmp_path / "dir"
    d.mkdir()
    _write(d, _cols(), "a.npz")
    _write(d, _cols(actions=np.array([0] * 8 + [2, 0])), "b.npz")
    data = load_transitions(d)
    assert data[Columns.OBS].shape == (20, 4) and [s[1:] for s in data.sources] == [(0, 10), (10, 20)]
    raises_naming(ValueError, lambda: check_transitions(data, CARTPOLE_OBS, CARTPOLE_ACT), "b.npz", "row 8", "action 2")


def test_bc_algorithm_rejects_actions_outside_the_env_space(tmp_path):
    from jaxrl_modules.algorithms.bc import BCConfig

    path = _write(tmp_path, _cols(actions=np.array([0, 1, 2] * 3 + [0])))
    raises_naming(ValueError, lambda: BCConfig().environment("CartPole-v1").offline_data(input_=path).build(),
                  "data.npz", "row 2", "action 2", "[0, 1]")


# ----------------------------------------------------------------------------- valid but unusual
def test_valid_unusual_inputs_are_accepted(env):
    """Raw uint32 keys act like typed keys; acting with the full learner params (critic included)
    is fine; an inference_only module accepts the learner params; a single shared spec answers
    any ModuleID."""
    ppo, p = env["ppo"], env["p"]
    batch = {Columns.OBS: np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)}
    raw = ppo.forward_exploration(p, batch, jax.random.PRNGKey(3))
    typed = ppo.forward_exploration(p, batch, jax.random.wrap_key_data(jax.random.PRNGKey(3)))
    assert jnp.array_equal(raw[Columns.ACTIONS], typed[Columns.ACTIONS])
    inf = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=TINY,
                             inference_only=True)
    a = inf.forward_inference(p, batch)[Columns.ACTION_DIST_INPUTS]
    b = inf.forward_inference(ppo.inference_params(p), batch)[Columns.ACTION_DIST_INPUTS]
    assert jnp.allclose(a, b) and jnp.allclose(a, ppo.forward_inference(p, batch)[Columns.ACTION_DIST_INPUTS])
    shared = MultiRLModuleSpec(rl_module_specs=env["spec"])
    assert "any_agent" in shared and shared["any_agent"] is env["spec"] and 3 not in shared
    bf16 = jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), p)  # mixed precision: another float width is fine
    assert ppo.forward_inference(bf16, batch)[Columns.ACTIONS].shape == (16,)
