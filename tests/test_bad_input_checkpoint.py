"""Bad-input matrix for checkpoints: save targets, params to save, edited or corrupt
metadata.json / class.pkl / params, and algorithm checkpoints. Each case asserts the
exception type and that the message names the path or setting, what was expected and what
was received."""

import json
import os
import shutil
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
import pytest

from jaxrl_modules import DefaultModelConfig, MultiRLModule, MultiRLModuleSpec, RLModule, RLModuleSpec
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig

from conftest import raises_naming

OBS, ACT = gym.spaces.Box(-1.0, 1.0, (3,), np.float32), gym.spaces.Discrete(2)
BIAS0 = "params['encoder']['mlp']['dense_0']['bias']"


class Ctx:
    """What a case works on: fresh copies of checkpoints saved once per module, in `tmp`."""

    def __init__(self, base, tmp, monkeypatch):
        self.__dict__.update(base)
        self.tmp, self.monkeypatch = tmp, monkeypatch

    def copy(self, which: str) -> Path:
        dst = self.tmp / which
        shutil.copytree(self.base_dirs[which], dst)
        return dst

    def save(self, path):
        return self.module.save_to_path(path, self.params)

    def chdir(self) -> Path:
        work = self.tmp / "work"
        work.mkdir()
        (work / "data.bin").write_bytes(b"keep")
        self.monkeypatch.chdir(work)
        return work


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    module = DefaultPPORLModule(observation_space=OBS, action_space=ACT, model_config=DefaultModelConfig(fcnet_hiddens=[4]))
    params = jax.device_get(module.init(jax.random.key(0)))
    spec = RLModuleSpec(DefaultPPORLModule, OBS, ACT, model_config=DefaultModelConfig(fcnet_hiddens=[4]))
    multi = MultiRLModuleSpec(rl_module_specs={"p0": spec, "p1": spec}).build()
    multi_params = jax.device_get(multi.init(jax.random.key(1)))
    algo = (PPOConfig().environment("CartPole-v1").rl_module(model_config={"fcnet_hiddens": [4]})
            .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1).build())
    dirs = {"single": module.save_to_path(root / "single", params), "multi": multi.save_to_path(root / "multi", multi_params),
            "algo": algo.save_to_path(root / "algo")}
    algo_meta = json.loads((root / "algo" / "algorithm.json").read_text())
    yield dict(module=module, params=params, multi=multi, multi_params=multi_params, algo=algo, base_dirs=dirs,
               num_leaves=algo_meta["num_leaves"], leaf0_name=next(iter(algo_meta["state"])),
               leaf0=next(iter(algo_meta["state"].values())))
    algo.stop()


def edit_json(file: Path, change) -> None:
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))


def meta_edit(change, which="single", sub=""):
    """A case loading a copy of a module checkpoint whose metadata.json was changed."""
    def run(c):
        path = c.copy(which)
        edit_json(path / sub / "metadata.json", change)
        cls = MultiRLModule if which == "multi" else RLModule
        return lambda: cls.from_checkpoint(path)
    return run


def space_edit(key, change):
    def apply(meta):
        change(meta[key])
    return meta_edit(apply)


def algo_edit(change):
    def run(c):
        path = c.copy("algo")
        edit_json(path / "algorithm.json", change)
        return lambda: c.algo.restore_from_path(path)
    return run


def setitem(key, value):
    return lambda d: d.__setitem__(key, value)


def delitem(key):
    return lambda d: d.pop(key)


def params_like(c, change):
    p = jax.tree_util.tree_map(np.array, c.params)
    change(p)
    return lambda: c.module.save_to_path(c.tmp / "new", p)


def make_file(c, rel, data=b"precious"):
    (c.tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    (c.tmp / rel).write_bytes(data)
    return c.tmp / rel


def nonempty(c):
    make_file(c, "folder/notes.txt")
    return lambda: c.save(c.tmp / "folder")


def symlink(c):
    (c.tmp / "real").mkdir()
    (c.tmp / "real" / "x").write_text("x")
    os.symlink(c.tmp / "real", c.tmp / "link")
    return lambda: c.save(c.tmp / "link")


def foreign_file(c):
    path = c.copy("single")
    (path / "mine.txt").write_text("mine")
    return lambda: c.save(path)


def garbage_metadata_dir(c):
    make_file(c, "g/metadata.json", b"{oops")
    return lambda: c.save(c.tmp / "g")


def fake_algorithm_dir(c):
    make_file(c, "a/algorithm.json", json.dumps({"algorithm": "PPO", "iteration": 0, "num_leaves": 0}).encode())
    return lambda: c.save(c.tmp / "a")


def class_pkl_and_module_class_broken(c):
    path = c.copy("single")
    edit_json(path / "metadata.json", setitem("module_class", "gone_package.mod:GoneModule"))
    (path / "class.pkl").write_bytes(b"\x80\x04garbage")
    return lambda: RLModule.from_checkpoint(path)


def bad_model_config(value):
    def run(c):
        path = c.copy("single")
        (path / "class.pkl").unlink()  # the JSON model_config is used only without class.pkl
        edit_json(path / "metadata.json", setitem("model_config", {"__DefaultModelConfig__": value}))
        return lambda: RLModule.from_checkpoint(path)
    return run


def rm(which, rel, load):
    def run(c):
        path = c.copy(which)
        target = path / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return lambda: load(c, path)
    return run


def garbage_file(which, rel, load):
    def run(c):
        path = c.copy(which)
        (path / rel).write_bytes(b"{not json")
        return lambda: load(c, path)
    return run


def from_ckpt(c, path):
    return RLModule.from_checkpoint(path)


def algo_restore(c, path):
    return c.algo.restore_from_path(path)


def state_leaf0(entry):
    def change(meta):
        meta["state"][next(iter(meta["state"]))] = entry
    return algo_edit(change)


T = "{tmp}"  # replaced by the case's tmp directory in fragments

CASES = {
    # ---------------------------------------------------------------- where a checkpoint is saved
    "save/regular_file": (ValueError, lambda c: (make_file(c, "f"), lambda: c.save(c.tmp / "f"))[1],
                          [f"{T}/f", "a regular file of 8 bytes", "expected a new path"]),
    "save/non_empty_dir": (ValueError, nonempty, [f"{T}/folder", "non-empty directory", "notes.txt", "expected"]),
    "save/empty_string": (ValueError, lambda c: (c.chdir(), lambda: c.save(""))[1],
                          ["''", "current working directory", "expected a new"]),
    "save/dot": (ValueError, lambda c: (c.chdir(), lambda: c.save("."))[1], ["'.'", "current working directory", "expected"]),
    "save/cwd_absolute": (ValueError, lambda c: (lambda w: lambda: c.save(str(w)))(c.chdir()),
                          [f"{T}/work", "is the current working directory", "expected"]),
    "save/parent_of_cwd": (ValueError, lambda c: (c.chdir(), lambda: c.save(str(c.tmp)))[1],
                           [f"'{T}'", "a parent of the current working directory", "expected"]),
    "save/dot_dot": (ValueError, lambda c: (c.chdir(), lambda: c.save(".."))[1], ["'..'", "parent of the current", "expected"]),
    "save/parent_is_file": (ValueError, lambda c: (make_file(c, "f"), lambda: c.save(c.tmp / "f" / "ckpt"))[1],
                            [f"{T}/f/ckpt", f"parent '{T}/f' is a regular file", "expected a directory"]),
    "save/symlink": (ValueError, symlink, [f"{T}/link", "symbolic link", "expected a directory"]),
    "save/over_multi_checkpoint": (ValueError, lambda c: (lambda p: lambda: c.save(p))(c.copy("multi")),
                                   [f"{T}/multi", "holds a multi_rl_module checkpoint", "rl_module checkpoint"]),
    "save/over_algorithm_checkpoint": (ValueError, fake_algorithm_dir, [f"{T}/a", "holds an algorithm checkpoint", "rl_module"]),
    "save/foreign_file_in_checkpoint": (ValueError, foreign_file, [f"{T}/single", "mine.txt", "expected only"]),
    "save/garbage_metadata_dir": (ValueError, garbage_metadata_dir, [f"{T}/g", "no valid metadata.json", "metadata.json"]),
    "save/path_not_pathlike": (TypeError, lambda c: lambda: c.save(5), ["checkpoint path", "str or os.pathlike", "int 5"]),
    "load/path_none": (TypeError, lambda c: lambda: RLModule.from_checkpoint(None),
                       ["checkpoint path", "str or os.pathlike", "nonetype none"]),
    "restore/path_int": (TypeError, lambda c: lambda: c.module.restore_from_path(3), ["checkpoint path", "str or os.pathlike",
                                                                                       "int 3"]),
    "algo/restore_path_none": (TypeError, lambda c: lambda: c.algo.restore_from_path(None),
                               ["checkpoint path", "str or os.pathlike", "nonetype none"]),
    "save/algorithm_over_module": (ValueError, lambda c: (lambda p: lambda: c.algo.save_to_path(p))(c.copy("single")),
                                   [f"{T}/single", "holds an rl_module checkpoint", "algorithm checkpoint"]),
    "save/algorithm_into_folder": (ValueError, lambda c: (make_file(c, "runs/log.txt"),
                                                                lambda: c.algo.save_to_path(c.tmp / "runs"))[1],
                                   [f"{T}/runs", "log.txt", "non-empty directory"]),
    # ---------------------------------------------------------------- params to save
    "params/other_module": (ValueError, lambda c: lambda: c.module.save_to_path(
        c.tmp / "n", DefaultPPORLModule(observation_space=OBS, action_space=ACT,
                                        model_config=DefaultModelConfig(fcnet_hiddens=[8])).init(jax.random.key(0))),
                            [BIAS0, "(8,)", "expects shape (4,)"]),
    "params/missing_leaf": (ValueError, lambda c: params_like(c, lambda p: p["encoder"]["mlp"]["dense_0"].pop("bias")),
                            [BIAS0, "missing from the params", "shape (4,)"]),
    "params/extra_leaf": (ValueError, lambda c: params_like(c, lambda p: p.__setitem__("ghost", np.zeros(2, np.float32))),
                          ["params['ghost']", "not part of the module", "(2,)"]),
    "params/float64": (ValueError, lambda c: params_like(c, lambda p: p["encoder"]["mlp"]["dense_0"].__setitem__(
        "bias", np.zeros(4))), [BIAS0, "float64", "expects shape (4,) float32"]),
    "params/string_leaf": (ValueError, lambda c: params_like(c, lambda p: p["encoder"]["mlp"]["dense_0"].__setitem__(
        "bias", "zeros")), [BIAS0, "must be an array", "str 'zeros'"]),
    "params/none": (ValueError, lambda c: lambda: c.module.save_to_path(c.tmp / "n", None),
                    ["params['", "missing from the params", "shape"]),
    "params/multi_missing_id": (ValueError, lambda c: lambda: c.multi.save_to_path(c.tmp / "n", {"p0": c.multi_params["p0"]}),
                                ["['p0', 'p1']", "missing ['p1']", "got ['p0']"]),
    "params/multi_unknown_id": (ValueError, lambda c: lambda: c.multi.save_to_path(c.tmp / "n", {**c.multi_params, "p9": {}}),
                                ["['p0', 'p1']", "unknown ['p9']", "got ['p0', 'p1', 'p9']"]),
    "params/multi_not_dict": (ValueError, lambda c: lambda: c.multi.save_to_path(c.tmp / "n", [1, 2]),
                              ["multirlmodule params", "a dict keyed by moduleid", "list"]),
    "params/multi_wrong_leaf": (ValueError, lambda c: lambda: c.multi.save_to_path(
        c.tmp / "n", {"p0": c.multi_params["p0"], "p1": {"x": np.zeros(1, np.float32)}}),
                                ["params['p1']", "missing from the params", "shape"]),
    # ---------------------------------------------------------------- reading module checkpoints
    "load/nothing_there": (ValueError, lambda c: lambda: RLModule.from_checkpoint(c.tmp / "nope"),
                           [f"{T}/nope", "expected a checkpoint directory", "found nothing"]),
    "load/a_file": (ValueError, lambda c: (make_file(c, "f"), lambda: RLModule.from_checkpoint(c.tmp / "f"))[1],
                    [f"{T}/f", "expected a checkpoint directory", "found a file"]),
    "load/empty_dir": (ValueError, lambda c: ((c.tmp / "e").mkdir(), lambda: RLModule.from_checkpoint(c.tmp / "e"))[1],
                       [f"{T}/e", "metadata.json is missing", "found []"]),
    "load/garbage_json": (ValueError, garbage_file("single", "metadata.json", from_ckpt),
                          [f"{T}/single", "metadata.json is not valid json", "expecting property name"]),
    "load/json_list": (ValueError, lambda c: (lambda p: ((p / "metadata.json").write_text("[1]"),
                                                         lambda: RLModule.from_checkpoint(p))[1])(c.copy("single")),
                       ["metadata.json", "a json object", "[1] (list)"]),
    "load/format": (ValueError, meta_edit(setitem("format", "other/2")),
                    ["metadata.json", "expected format 'jaxrl_modules.checkpoint/1'", "got 'other/2'"]),
    "load/kind": (ValueError, meta_edit(setitem("kind", "banana")),
                  ["metadata.json", "'kind' must be 'rl_module' or 'multi_rl_module'", "'banana'"]),
    "load/missing_module_class": (ValueError, meta_edit(delitem("module_class")),
                                  ["metadata.json", "lacks the key 'module_class'", "it has"]),
    "load/module_class_int": (ValueError, meta_edit(setitem("module_class", 5)), ["'module_class'", "a str", "5 (int)"]),
    "load/module_class_no_colon": (ValueError, meta_edit(setitem("module_class", "DefaultPPORLModule")),
                                   ["'module_class'", "package.module:classname", "'defaultpporlmodule'"]),
    "load/inference_only_str": (ValueError, meta_edit(setitem("inference_only", "yes")),
                                ["'inference_only'", "a bool", "'yes' (str)"]),
    "load/missing_params_spec": (ValueError, meta_edit(delitem("params")), ["metadata.json", "lacks the key 'params'", "it has"]),
    "load/params_spec_entry": (ValueError, meta_edit(lambda m: m["params"].__setitem__(
        "['encoder']['mlp']['dense_0']['bias']", ["4", "float32"])), ["metadata.json' params[", "[shape as a list", "'4'"]),
    "load/params_spec_shape": (ValueError, meta_edit(lambda m: m["params"].__setitem__(
        "['encoder']['mlp']['dense_0']['bias']", [[5], "float32"])),
                               ["metadata.json", BIAS0, "shape (5,)", "expects shape (4,)"]),
    "load/params_spec_dtype": (ValueError, meta_edit(lambda m: m["params"].__setitem__(
        "['encoder']['mlp']['dense_0']['bias']", [[4], "int8"])), ["metadata.json", BIAS0, "int8", "float32"]),
    "load/params_spec_extra": (ValueError, meta_edit(lambda m: m["params"].__setitem__("['ghost']", [[1], "float32"])),
                               ["metadata.json", "params['ghost']", "not part of the module"]),
    "load/params_spec_missing": (ValueError, meta_edit(lambda m: m["params"].pop("['encoder']['mlp']['dense_0']['bias']")),
                                 ["metadata.json", BIAS0, "missing from the checkpoint"]),
    "load/params_dir_missing": (ValueError, rm("single", "params", from_ckpt),
                                [f"{T}/single", "cannot read params", "not found"]),
    "load/params_garbage": (ValueError, garbage_file("single", "params/_METADATA", from_ckpt),
                            [f"{T}/single", "cannot read params", "error"]),
    "load/class_and_pickle_broken": (ValueError, class_pkl_and_module_class_broken,
                                     ["gone_package.mod:GoneModule", "does not import", "class.pkl cannot be unpickled"]),
    "load/model_config_unknown_field": (ValueError, bad_model_config({"fcnet_hidens": [4]}),
                                        ["'model_config'", "not a valid defaultmodelconfig", "fcnet_hidens"]),
    "load/model_config_not_dict": (ValueError, bad_model_config([4]),
                                   ["'model_config'", "a dict of defaultmodelconfig fields", "[4] (list)"]),
    "load/wrong_class_expected": (ValueError, lambda c: (lambda p: lambda: MultiRLModule.from_checkpoint(p))(c.copy("single")),
                                  [f"{T}/single", "holds a defaultpporlmodule", "not a multirlmodule"]),
    # ---------------------------------------------------------------- space descriptions in metadata.json
    "space/not_a_dict": (ValueError, meta_edit(setitem("observation_space", [1])),
                         ["'observation_space'", "a dict or null", "[1] (list)"]),
    "space/unknown_type": (ValueError, space_edit("observation_space", setitem("type", "Bax")),
                           ["observation_space", "unknown type 'bax'", "expected one of"]),
    "space/box_missing_low": (ValueError, space_edit("observation_space", delitem("low")),
                              ["observation_space", "lacks the key 'low'", "it has"]),
    "space/box_low_nan": (ValueError, space_edit("observation_space", setitem("low", [float("nan")] * 3)),
                          ["observation_space 'low'", "not nan", "nan"]),
    "space/box_low_str": (ValueError, space_edit("observation_space", setitem("low", "minus one")),
                          ["observation_space 'low'", "a number or a (nested) list of numbers", "'minus one'"]),
    "space/box_low_length": (ValueError, space_edit("observation_space", setitem("low", [-1.0, -1.0])),
                             ["observation_space 'low'", "of shape (3,)", "[-1.0, -1.0]"]),
    "space/box_shape_str": (ValueError, space_edit("observation_space", setitem("shape", ["3"])),
                            ["observation_space 'shape'", "non-negative ints", "['3']"]),
    "space/box_dtype": (ValueError, space_edit("observation_space", setitem("dtype", "float99")),
                        ["observation_space 'dtype'", "numpy dtype name", "'float99'"]),
    "space/box_dtype_object": (ValueError, space_edit("observation_space", setitem("dtype", "str")),
                               ["observation_space 'dtype'", "a float or int dtype", "'str'"]),
    "space/box_low_above_high": (ValueError, space_edit("observation_space", setitem("low", [2.0, 2.0, 2.0])),
                                 ["observation_space", "low <= high", "[2.0, 2.0, 2.0]"]),
    "space/discrete_n_zero": (ValueError, space_edit("action_space", setitem("n", 0)),
                               ["action_space 'n'", "an int >= 1", "0 (int)"]),
    "space/discrete_n_str": (ValueError, space_edit("action_space", setitem("n", "2")),
                              ["action_space 'n'", "an int >= 1", "'2'"]),
    "space/discrete_n_bool": (ValueError, space_edit("action_space", setitem("n", True)),
                               ["action_space 'n'", "int >= 1", "true"]),
    "space/discrete_missing_n": (ValueError, space_edit("action_space", delitem("n")),
                                 ["action_space", "lacks the key 'n'", "it has"]),
    "space/discrete_start_float": (ValueError, space_edit("action_space", setitem("start", 1.5)),
                                   ["action_space 'start'", "an int", "1.5"]),
    "space/multidiscrete_nvec": (ValueError, space_edit("action_space", lambda s: s.update(type="MultiDiscrete", nvec=[0, 2])),
                                 ["action_space 'nvec'", "ints >= 1", "[0, 2]"]),
    "space/multidiscrete_start_shape": (ValueError, space_edit("action_space", lambda s: s.update(
        type="MultiDiscrete", nvec=[2, 2], start=[0, 0, 0])), ["action_space 'start'", "shape (2,)", "[0, 0, 0]"]),
    "space/multibinary_n": (ValueError, space_edit("action_space", lambda s: s.update(type="MultiBinary", n=-1)),
                            ["action_space 'n'", "an int >= 1", "-1"]),
    "space/tuple_spaces_dict": (ValueError, space_edit("action_space", lambda s: s.update(type="Tuple", spaces={})),
                                ["action_space 'spaces'", "a list of space descriptions", "{} (dict)"]),
    "space/dict_spaces_list": (ValueError, space_edit("action_space", lambda s: s.update(type="Dict", spaces=[])),
                               ["action_space 'spaces'", "a dict of space descriptions", "[] (list)"]),
    "space/nested_tuple_element": (ValueError, space_edit("action_space", lambda s: s.update(
        type="Tuple", spaces=[{"type": "Discrete", "n": 2}, {"type": "Discrete", "n": -3}])),
                                   ["action_space[1] 'n'", "an int >= 1", "-3"]),
    # ---------------------------------------------------------------- multi-module checkpoints
    "multi/module_ids_str": (ValueError, meta_edit(setitem("module_ids", "p0"), "multi"),
                             ["'module_ids'", "a list", "'p0' (str)"]),
    "multi/module_ids_dotdot": (ValueError, meta_edit(setitem("module_ids", ["p0", ".."]), "multi"),
                                ["'module_ids'", "distinct moduleid strings", "'..'"]),
    "multi/module_ids_duplicate": (ValueError, meta_edit(setitem("module_ids", ["p0", "p0"]), "multi"),
                                   ["'module_ids'", "distinct", "['p0', 'p0']"]),
    "multi/sub_dir_missing": (ValueError, rm("multi", "p1", lambda c, p: MultiRLModule.from_checkpoint(p)),
                              [f"{T}/multi/p1", "expected a checkpoint directory", "found nothing"]),
    "multi/sub_metadata_edited": (ValueError, meta_edit(setitem("inference_only", 1), "multi", "p0"),
                                  ["p0/metadata.json", "'inference_only'", "a bool", "1 (int)"]),
    # ---------------------------------------------------------------- algorithm checkpoints
    "algo/json_missing": (ValueError, rm("algo", "algorithm.json", algo_restore),
                          [f"{T}/algo", "algorithm.json is missing", "found ["]),
    "algo/garbage_json": (ValueError, garbage_file("algo", "algorithm.json", algo_restore),
                          ["algorithm.json", "not valid json", "expecting property name"]),
    "algo/json_list": (ValueError, lambda c: (lambda p: ((p / "algorithm.json").write_text("[]"),
                                                         lambda: c.algo.restore_from_path(p))[1])(c.copy("algo")),
                       ["algorithm.json", "a json object", "[] (list)"]),
    "algo/missing_iteration": (ValueError, algo_edit(delitem("iteration")),
                               ["algorithm.json", "lacks the key 'iteration'", "it has"]),
    "algo/iteration_str": (ValueError, algo_edit(setitem("iteration", "3")), ["'iteration'", "an int >= 0", "'3' (str)"]),
    "algo/iteration_negative": (ValueError, algo_edit(setitem("iteration", -1)), ["'iteration'", "an int >= 0", "-1"]),
    "algo/algorithm_not_str": (ValueError, algo_edit(setitem("algorithm", 7)), ["'algorithm'", "a str", "7 (int)"]),
    "algo/other_algorithm": (ValueError, algo_edit(setitem("algorithm", "DQN")), [f"{T}/algo", "is of a dqn", "this is a ppo"]),
    "algo/num_leaves_count": (ValueError, algo_edit(lambda m: (m.pop("state"), m.__setitem__("num_leaves", 3))),
                              ["algorithm.json", "holds 3 state arrays (num_leaves)", "this algorithm has {num_leaves}"]),
    "algo/num_leaves_str": (ValueError, algo_edit(setitem("num_leaves", "28")), ["'num_leaves'", "an int >= 0", "'28'"]),
    "algo/state_not_dict": (ValueError, algo_edit(setitem("state", [])), ["'state'", "a dict of {num_leaves}", "[] (list)"]),
    "algo/state_entry_bad": (ValueError, state_leaf0({"shape": "()", "dtype": "int64"}),
                             ["state['{leaf0_name}']", "'shape': [non-negative ints]", "'()'"]),
    "algo/state_shape_edited": (ValueError, state_leaf0({"path": "x", "shape": [99], "dtype": "int64"}),
                                ["algorithm.json", "state array {leaf0_name} has shape (99,)", "expects shape {leaf0_shape}",
                                 "different config"]),
    "algo/state_dtype_edited": (ValueError, state_leaf0({"path": "x", "shape": [], "dtype": "float16"}),
                                ["state array {leaf0_name} has shape () float16", "{leaf0_dtype}"]),
    "algo/state_dir_missing": (ValueError, rm("algo", "algorithm_state", algo_restore),
                               [f"{T}/algo", "cannot read algorithm_state", "not found"]),
    "algo/not_an_algorithm_checkpoint": (ValueError, lambda c: (lambda p: lambda: c.algo.restore_from_path(p))(c.copy("single")),
                                         [f"{T}/single", "algorithm.json is missing", "metadata.json"]),
    "algo/component_bad": (ValueError, lambda c: lambda: c.algo.restore_from_path(c.base_dirs["single"], component="rl_module"),
                           ["unknown component 'rl_module'", "learner_group/learner/rl_module/<module_id>"]),
    "algo/component_unknown_id": (ValueError, lambda c: lambda: c.algo.restore_from_path(
        c.base_dirs["single"], component="learner_group/learner/rl_module/p9"), ["unknown moduleid 'p9'", "default_policy"]),
    "algo/component_other_module": (ValueError, lambda c: lambda: c.algo.restore_from_path(
        c.base_dirs["single"], component="learner_group/learner/rl_module/default_policy"),
                                    ["metadata.json", "params['actor_encoder']", "missing from the checkpoint"]),
}


def test_matrix_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_checkpoint_input(name, base, tmp_path, monkeypatch):
    exc, build, fragments = CASES[name]
    fragments = list(fragments)
    c = Ctx(base, tmp_path, monkeypatch)
    fn = build(c)
    values = {"{tmp}": str(tmp_path), "{num_leaves}": str(c.num_leaves), "{leaf0_name}": c.leaf0_name,
              "{leaf0_shape}": str(tuple(c.leaf0["shape"])),
              "{leaf0_dtype}": c.leaf0["dtype"]}
    for i, f in enumerate(fragments):
        for k, v in values.items():
            f = f.replace(k, v)
        fragments[i] = f
    raises_naming(exc, fn, *fragments)


def test_tilde_paths_mean_the_home_directory(base, tmp_path, monkeypatch):
    """`~/...` is the home directory (as in a shell), for saving and loading: never a folder
    literally named `~` in the working directory."""
    c = Ctx(base, tmp_path, monkeypatch)
    work = c.chdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    saved = c.save("~/ckpts/m")
    assert Path(saved) == tmp_path / "home" / "ckpts" / "m" and not (work / "~").exists()
    module, params = RLModule.from_checkpoint("~/ckpts/m")
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, params, c.params))
    c.module.restore_from_path(Path("~/ckpts/m"))
