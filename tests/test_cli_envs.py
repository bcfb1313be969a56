"""`train --env-config / --flatten-obs / --atari`, MultiAgentCartPole and env classes by import path."""

import csv
import json
import re
import sys

import pytest

from jaxrl_modules.cli import main
from jaxrl_modules.cli.parser import build_parser

TINY = ["--quiet", "--num-envs", "2", "--config", "train_batch_size_per_learner=32", "minibatch_size=16", "num_epochs=1",
        "fcnet_hiddens=[8]"]


def _train(tmp_path, name, *flags, iterations=1, tiny=TINY):
    return main(["train", "--iterations", str(iterations), "--runs-dir", str(tmp_path), "--name", name, *flags, *tiny])


def _rows(run):
    return list(csv.DictReader(open(run / "metrics.csv")))


def _checkpoint(run):
    """The checkpoint under a run folder, whatever its layout (checkpoints/final or checkpoints/<it>/algorithm)."""
    found = sorted(run.glob("**/algorithm.json"))
    assert found, f"no algorithm.json under {run}"
    return found[-1].parent


def test_frozen_lake_flatten_obs_with_env_config(tmp_path):
    assert _train(tmp_path, "fl", "--env", "FrozenLake-v1", "--flatten-obs", "--env-config", "is_slippery=False",
                  iterations=2) == 0
    run = tmp_path / "fl"
    assert [r["iteration"] for r in _rows(run)] == ["1", "2"]
    meta = json.loads((_checkpoint(run) / "algorithm.json").read_text())
    env = meta.get("env")
    if env is not None:  # recorded by checkpoints that describe their env
        assert env["id"] == "FrozenLake-v1" and env["env_config"] == {"is_slippery": False}
        assert env["connector"]["class"] == "FlattenObservations"


def test_blackjack_tuple_obs_ppo_and_frozen_lake_dqn(tmp_path):
    assert _train(tmp_path, "bj", "--env", "Blackjack-v1", "--flatten-obs") == 0
    assert _rows(tmp_path / "bj")[-1]["num_env_steps_sampled_lifetime"] == "32"
    assert main(["train", "--algo", "dqn", "--env", "FrozenLake-v1", "--flatten-obs", "--iterations", "1", "--runs-dir",
                 str(tmp_path), "--name", "bjq", "--quiet", "--num-envs", "2", "--config",
                 "num_steps_sampled_before_learning_starts=64", "train_batch_size=16", "fcnet_hiddens=[8]"]) == 0
    assert "default_policy/qf_loss" in _rows(tmp_path / "bjq")[-1]


TINY_ONE_ENV = [f for f in TINY if f not in ("--num-envs", "2")]  # a multi-agent env steps one env


def test_multi_agent_cartpole_trains_one_shared_policy(tmp_path):
    assert _train(tmp_path, "ma", "--env", "MultiAgentCartPole", "--env-config", "num_agents=2", tiny=TINY_ONE_ENV) == 0
    row = _rows(tmp_path / "ma")[-1]
    assert row["num_env_steps_sampled_lifetime"] == "16"  # 32 agent steps of 2 agents
    assert [k.split("/")[0] for k in row if "/" in k] == ["default_policy"] * sum("/" in k for k in row)


def test_env_class_by_import_path(tmp_path):
    assert _train(tmp_path, "cls", "--env", "jaxrl_modules.envs.multi_agent_cartpole:MultiAgentCartPole",
                  tiny=TINY_ONE_ENV) == 0
    assert _rows(tmp_path / "cls")[-1]["num_env_steps_sampled_lifetime"] == "32"  # num_agents defaults to 1


@pytest.mark.slow
def test_gymnax_flatten_obs_with_ppo(tmp_path):
    assert _train(tmp_path, "gx", "--env", "gymnax:CartPole-v1", "--flatten-obs") == 0
    assert _rows(tmp_path / "gx")[-1]["num_env_steps_sampled_lifetime"] == "32"


def test_config_from_args_applies_the_env_flags():
    """`--resume` rebuilds the config from the stored flags through config_from_args."""
    from jaxrl_modules.cli.config_build import config_from_args
    from jaxrl_modules.cli.envs import flatten_connector

    parse = build_parser("x").parse_args
    config = config_from_args(parse(["train", "--env", "FrozenLake-v1", "--flatten-obs", "--env-config", "map_name='8x8'",
                                     "is_slippery=False"]))
    assert config.env == "FrozenLake-v1" and config.env_config == {"map_name": "8x8", "is_slippery": False}
    assert config.env_to_module_connector is flatten_connector
    assert config.copy().env_to_module_connector is flatten_connector
    pytest.importorskip("ale_py")
    config = config_from_args(parse(["train", "--env", "ale_py:ALE/Pong-v5", "--atari", "--env-config", "mode=1"]))
    assert config.env == "atari:ALE/Pong-v5" and config.env_config == {"mode": 1}
    assert config.model_config["head_fcnet_hiddens"] == [256] and config.model_config["vf_share_layers"] is True
    assert config_from_args(parse(["train"])).env_to_module_connector is None


def test_multi_agent_env_keeps_one_env_on_the_command_line():
    """PPO's command-line default of 8 envs is for single-agent envs: on a multi-agent env, whose loop steps
    one env (num_envs_per_env_runner != 1 is refused), the default is left at 1; --num-envs 1 is accepted."""
    from jaxrl_modules.cli.config_build import config_from_args

    parse = build_parser("x").parse_args
    assert config_from_args(parse(["train", "--env", "MultiAgentCartPole"])).num_envs_per_env_runner == 1
    assert config_from_args(parse(["train", "--env", "MultiAgentCartPole", "--num-envs", "1"])).num_envs_per_env_runner == 1
    assert config_from_args(parse(["train", "--env", "CartPole-v1"])).num_envs_per_env_runner == 8


BAD = [
    (["--env", "FrozenLake-v1"], r"observes Discrete\(16\).*add --flatten-obs"),
    (["--env", "Blackjack-v1"], r"observes Tuple\(Discrete\(32\).*add --flatten-obs"),
    (["--env-config", "is_slippery"], "--env-config entries are key=value; got 'is_slippery'"),
    (["--env-config", "=1"], "--env-config entries are key=value; got '=1'"),
    (["--env-config", "a-b=1"], "--env-config key 'a-b' is not a keyword argument name"),
    (["--env-config", "a=1", "a=2"], "--env-config key 'a' is given twice"),
    (["--env-config", "render_modee='human'"], "--env-config key 'render_modee' is not accepted by --env 'CartPole-v1'"),
    (["--env", "FrozenLake-v1", "--flatten-obs", "--env-config", "map_name='3x3'"],
     "--env 'FrozenLake-v1' could not be created with --env-config {'map_name': '3x3'}: .*KeyError '3x3'"),
    (["--env", "gymnax:CartPole-v1", "--env-config", "foo=1"],
     "--env-config key 'foo' is not accepted by --env 'gymnax:CartPole-v1'"),
    (["--env", "MultiAgentCartPole", "--env-config", "num_agentz=2"],
     "--env-config key 'num_agentz' is not accepted by --env 'MultiAgentCartPole'"),
    (["--env", "MultiAgentCartPole", "--env-config", "num_agents=0"], "'num_agents' must be an int >= 1; got 0"),
    (["--env", "MultiAgentCartPole", "--algo", "dqn"], "multi-agent env, which only --algo ppo trains; got --algo dqn"),
    (["--env", "MultiAgentCartPole", "--flatten-obs"], "--flatten-obs is for single-agent envs"),
    (["--env", "MultiAgentCartPole", "--num-envs", "4"],
     r"--num-envs 4: --env 'MultiAgentCartPole' is a multi-agent env, whose loop steps one env.*expected --num-envs 1"),
    (["--env", "Blackjack-v1", "--algo", "dqn", "--flatten-obs"], r"--flatten-obs with --algo dqn takes Box.*Tuple.*--algo ppo"),
    (["--env", "gymnax:CartPole-v1", "--algo", "dqn", "--flatten-obs"], "--flatten-obs on a gymnax env works with --algo ppo"),
    (["--algo", "bc", "--config", "input_='x.npz'", "--flatten-obs"], "--flatten-obs is for algorithms that sample.*--algo bc"),
    (["--env", "CartPole-v1", "--atari"], "--atari needs an ALE image env.*got --env 'CartPole-v1'"),
    (["--env", "ALE/Pong-ram-v5", "--atari"], "--atari needs an ALE image env.*got --env 'ALE/Pong-ram-v5'"),
    (["--env", "gymnax:CartPole-v1", "--atari"], "--atari wraps ALE envs.*gymnax"),
    (["--env", "ALE/Pongg-v5", "--atari"], "Unknown Atari game 'ALE/Pongg-v5'.*Did you mean: `Pong`"),
    (["--env", "ALE/Pong-v5"], "raw 210x160 Atari frames: add --atari"),
    (["--env", "ALE/Pong-v5", "--atari", "--env-config", "foo=1"],
     "--env-config key 'foo' is not accepted by --env 'ALE/Pong-v5'"),
    (["--env", "ALE/Pong-v5", "--atari", "--env-config", "framestack=0"], "'framestack'.*must be an int >= 1; got 0"),
    (["--env", "ALE/Pong-v5", "--atari", "--env-config", "mode=99"], "with --env-config {'mode': 99}.*Invalid game mode"),
    (["--env", "nosuch_pkg.envs:MyEnv"], "needs the Python module 'nosuch_pkg.envs'"),
    (["--env", "jaxrl_modules.envs:NoSuchEnv"], "Unknown environment 'jaxrl_modules.envs:NoSuchEnv'"),
]


@pytest.mark.parametrize("flags,message", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_env_flags_are_one_line_usage_errors(tmp_path, capsys, flags, message):
    if any("ALE/" in f for f in flags):
        pytest.importorskip("ale_py")
    with pytest.raises(SystemExit) as err:
        main(["train", "--iterations", "1", "--runs-dir", str(tmp_path), "--name", "bad", "--quiet", *flags])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxrl-modules: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "bad").exists()  # nothing is written for a bad command line


def test_atari_without_ale_py_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # as when ale-py is not installed
    with pytest.raises(SystemExit):
        main(["train", "--env", "ALE/Pong-v5", "--atari", "--runs-dir", str(tmp_path)])
    assert "pip install 'jaxrl_modules[atari]'" in capsys.readouterr().err


@pytest.mark.slow
def test_atari_trains_with_the_cnn(tmp_path):
    pytest.importorskip("ale_py")
    from jaxrl_modules.cli.config_build import config_from_args

    flags = ["train", "--env", "ALE/Breakout-v5", "--atari", "--iterations", "1", "--runs-dir", str(tmp_path), "--name", "atari",
             "--quiet", "--num-envs", "2", "--config", "train_batch_size_per_learner=16", "minibatch_size=16", "num_epochs=1",
             "head_fcnet_hiddens=[8]"]
    assert main(flags) == 0
    assert _rows(tmp_path / "atari")[-1]["num_env_steps_sampled_lifetime"] == "16"
    algo = config_from_args(build_parser("x").parse_args(flags)).build()  # as --resume rebuilds it
    algo.restore_from_path(_checkpoint(tmp_path / "atari"))
    assert algo.config.env == "atari:ALE/Breakout-v5" and algo.module.observation_space.shape == (64, 64, 4)
    kernels = [leaf.shape for path, leaf in _flat(algo.learner_state.params) if len(getattr(leaf, "shape", ())) == 4]
    assert [k[-1] for k in kernels[:4]] == [16, 32, 64, 128]  # RLlib's conv filters for 64x64 frames


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flat(value, f"{prefix}/{key}")
    else:
        yield prefix, tree
