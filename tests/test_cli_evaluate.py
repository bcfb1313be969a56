"""`jaxrl-modules evaluate CHECKPOINT` on every kind of checkpoint `train` writes, built here with the
library (tiny modules, a train() call or none) and laid out as a run folder
(`run/checkpoints/<step>/algorithm/` + `run/config.json`)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from jaxrl_modules.algorithms import register_env
from jaxrl_modules.algorithms.algorithm import COMPONENT_PREFIX
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.algorithms.sac import SACConfig
from jaxrl_modules.cli import main
from jaxrl_modules.connectors import FlattenObservations
from jaxrl_modules.envs import MultiAgentCartPole

TINY = {"fcnet_hiddens": [8]}
SMALL = dict(train_batch_size_per_learner=32, minibatch_size=32, num_epochs=1)
SEED = 10_000  # the seed Algorithm.evaluate() resets its env with: the same episodes as `--seed 10000`


class RenderEnv(gym.Env):
    """Episodes of 5 steps paying 1; renders a frame whose shade is the step."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)
    render_mode = "rgb_array"

    def __init__(self, config=None):
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t >= 5, False, {}

    def render(self):
        return np.full((8, 8, 3), 40 * self.t, np.uint8)


register_env("render_env", RenderEnv)


def _saved(algo, path, iterations=1):
    for _ in range(iterations):
        algo.train()
    algo.save_to_path(path)
    return path


def _run(argv, capsys):
    capsys.readouterr()
    assert main(["evaluate", *argv]) == 0
    return capsys.readouterr().out


def _mean(out):
    return float(re.search(r"mean return over \d+ episodes: (-?[\d.]+)", out).group(1))


def _bad(argv, capsys, *fragments):
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["evaluate", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jaxrl-modules: error: "), err
    for fragment in fragments:
        assert fragment.lower() in err.lower(), (fragment, err)
    return err


@pytest.fixture(scope="module")
def frozenlake(tmp_path_factory):
    """PPO on FrozenLake-v1 (Discrete observations) through the FlattenObservations connector."""
    algo = (PPOConfig().environment("FrozenLake-v1").env_runners(num_envs_per_env_runner=2,
                                                                  env_to_module_connector=lambda env: FlattenObservations())
            .rl_module(model_config=TINY).training(**SMALL)).build()
    path = _saved(algo, tmp_path_factory.mktemp("fl") / "ckpt")
    expected = algo.evaluate(episodes=3)["env_runners"]["episode_return_mean"]
    algo.stop()
    return path, expected


def test_connector_checkpoint_is_evaluated_through_its_connector(frozenlake, capsys):
    path, expected = frozenlake
    meta = json.loads((path / "algorithm.json").read_text())
    assert meta["env"]["id"] == "FrozenLake-v1" and meta["env"]["connector"] == {
        "class": "FlattenObservations", "path": "jaxrl_modules.connectors.flatten_observations:FlattenObservations"}
    out = _run([str(path), "--episodes", "3", "--seed", str(SEED)], capsys)
    assert f"checkpoint: {path} (an algorithm checkpoint)" in out
    assert "env: FrozenLake-v1 (from algorithm.json, connector FlattenObservations)" in out
    assert _mean(out) == pytest.approx(expected, abs=0.05)
    # the same module directly (a module checkpoint inside the algorithm checkpoint): the env still comes from algorithm.json
    out = _run([str(path / COMPONENT_PREFIX / "default_policy"), "--episodes", "3", "--seed", str(SEED)], capsys)
    assert "a module checkpoint" in out and "connector FlattenObservations" in out


def test_unknown_connector_and_corrupt_algorithm_json_are_refused(frozenlake, tmp_path, capsys):
    path = tmp_path / "ckpt"
    shutil.copytree(frozenlake[0], path)
    meta = json.loads((path / "algorithm.json").read_text())
    meta["env"]["connector"] = {"class": "MyConnector", "path": "mypkg.connectors:MyConnector"}
    (path / "algorithm.json").write_text(json.dumps(meta))
    _bad([str(path)], capsys, "'mypkg.connectors:MyConnector'", "cannot rebuild", "FlattenObservations")
    meta["env"] = ["FrozenLake-v1"]
    (path / "algorithm.json").write_text(json.dumps(meta))
    _bad([str(path)], capsys, "algorithm.json", "key 'env'", "must be a dict", "['FrozenLake-v1'] (list)")
    (path / "algorithm.json").write_text("{not json")
    _bad([str(path)], capsys, "algorithm.json", "not valid JSON")


@pytest.mark.parametrize("env", ["gymnax:CartPole-v1", "gymnax:Pendulum-v1"])
def test_gymnax_checkpoint_is_evaluated_in_one_jit(env, tmp_path, capsys):
    algo = PPOConfig().environment(env).env_runners(num_envs_per_env_runner=4).rl_module(model_config=TINY).build()
    path = _saved(algo, tmp_path / "ckpt", iterations=0)  # an untrained module: no iteration to compile
    expected = algo.evaluate(episodes=3)["env_runners"]["episode_returns"]
    assert len(set(expected)) > 1 or env.endswith("CartPole-v1")  # per-episode returns, not one mean repeated
    out = _run([str(path), "--episodes", "3", "--seed", str(SEED)], capsys)
    assert f"env: {env} (from algorithm.json)" in out
    assert _mean(out) == pytest.approx(np.mean(expected), abs=0.05)
    sampled = _run([str(path), "--episodes", "3", "--seed", "1", "--stochastic"], capsys)
    assert "sampled actions, seed 1" in sampled
    _bad([str(path), "--record", str(tmp_path / "out.gif")], capsys, "--record", env, "gymnax env")


def test_gymnax_off_policy_evaluate_returns_each_episode(tmp_path):
    algo = (SACConfig().environment("gymnax:Pendulum-v1").env_runners(num_envs_per_env_runner=4)
            .rl_module(model_config=TINY).training(num_steps_sampled_before_learning_starts=10**6)).build()
    returns = algo.evaluate(episodes=3)["env_runners"]["episode_returns"]
    assert len(returns) == 3 and len(set(returns)) == 3 and all(-2000 < r < 0 for r in returns)


def test_multi_agent_checkpoint_sums_its_agents(tmp_path, capsys):
    algo = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2}).rl_module(model_config=TINY)
            .training(**SMALL)).build()
    path = _saved(algo, tmp_path / "ckpt", iterations=0)
    expected = algo.evaluate(episodes=2)["env_runners"]["episode_returns"]
    env = json.loads((path / "algorithm.json").read_text())["env"]
    assert env["multi_agent"] and env["agent_to_module"] == [[0, "default_policy"], [1, "default_policy"]]
    assert env["creator"] == "jaxrl_modules.envs.multi_agent_cartpole:MultiAgentCartPole"
    out = _run([str(path), "--episodes", "2", "--seed", str(SEED)], capsys)
    assert "with env_config {'num_agents': 2}" in out and _mean(out) == pytest.approx(np.mean(expected), abs=0.05)
    assert min(expected) >= 2 * 8  # two agents' CartPole episodes, summed
    _bad([str(path), "--record", str(tmp_path / "out.gif")], capsys, "--record", "multi-agent env")
    _bad([str(path / COMPONENT_PREFIX / "default_policy")], capsys, "one module of the multi-agent checkpoint")


@pytest.mark.parametrize("config", [
    pytest.param(DQNConfig().environment("CartPole-v1"), id="dqn"),
    pytest.param(SACConfig().environment("Pendulum-v1", normalize_actions=False, clip_actions=True), id="sac")])
def test_off_policy_host_checkpoints(config, tmp_path, capsys):
    algo = config.rl_module(model_config=TINY).build()
    path = _saved(algo, tmp_path / "ckpt", iterations=0)
    expected = algo.evaluate(episodes=2)["env_runners"]["episode_return_mean"]
    env = json.loads((path / "algorithm.json").read_text())["env"]
    assert (env["normalize_actions"], env["clip_actions"]) == (config.normalize_actions, config.clip_actions)
    out = _run([str(path), "--episodes", "2", "--seed", str(SEED)], capsys)
    assert _mean(out) == pytest.approx(expected, abs=0.05)
    out = _run([str(path), "--episodes", "2", "--stochastic"], capsys)
    assert "mean return over 2 episodes" in out


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder as train writes it: checkpoints/<step>/algorithm/ (steps 1 and 3) and config.json."""
    run = tmp_path_factory.mktemp("runs") / "r"
    algo = PPOConfig().environment("CartPole-v1").rl_module(model_config=TINY).training(**SMALL).build()
    for step in (1, 3):
        algo.train()
        (run / "checkpoints" / str(step) / "algorithm").mkdir(parents=True)
        algo.write_checkpoint(run / "checkpoints" / str(step) / "algorithm")
    (run / "checkpoints" / "3.orbax-checkpoint-tmp-7").mkdir()  # an unfinished save is skipped
    (run / "config.json").write_text(json.dumps({"flags": {"env": "CartPole-v1", "env_config": [], "flatten_obs": False},
                                                 "env": "CartPole-v1"}))
    expected = algo.evaluate(episodes=2)["env_runners"]["episode_return_mean"]
    algo.stop()
    return run, expected


def test_run_folder_checkpoints_folder_and_step_folder(run_folder, capsys):
    run, expected = run_folder
    newest = run / "checkpoints" / "3" / "algorithm"
    for given in (run, run / "checkpoints"):
        out = _run([str(given), "--episodes", "2", "--seed", str(SEED)], capsys)
        assert f"checkpoint: {newest} (step 3, the newest of 2 in {str(run / 'checkpoints')!r})" in out
        assert _mean(out) == pytest.approx(expected, abs=0.05)
    out = _run([str(run / "checkpoints" / "1"), "--episodes", "1"], capsys)
    assert f"checkpoint: {run / 'checkpoints' / '1' / 'algorithm'} (the algorithm checkpoint in it)" in out


def test_old_checkpoint_without_env_entry_uses_the_run_config(run_folder, tmp_path, capsys):
    run = tmp_path / "old"
    shutil.copytree(run_folder[0], run)
    ckpt = run / "checkpoints" / "3" / "algorithm"
    meta = json.loads((ckpt / "algorithm.json").read_text())
    del meta["env"]
    (ckpt / "algorithm.json").write_text(json.dumps(meta))
    out = _run([str(run), "--episodes", "2"], capsys)
    assert "env: CartPole-v1 (from the run's config.json)" in out
    (run / "config.json").unlink()
    _bad([str(run)], capsys, "cannot tell which env", "pass --env")
    out = _run([str(run), "--episodes", "1", "--env", "CartPole-v1"], capsys)
    assert "(from --env)" in out


def test_run_config_flags_rebuild_env_config_and_connector(frozenlake, tmp_path, capsys):
    """A module checkpoint in a run folder: the env, --env-config and --flatten-obs come from config.json's flags."""
    run = tmp_path / "run"
    module_dir = run / "modules" / "m"
    shutil.copytree(frozenlake[0] / COMPONENT_PREFIX / "default_policy", module_dir)
    (run / "config.json").write_text(json.dumps({"flags": {"env": "FrozenLake-v1", "env_config": ["is_slippery=False"],
                                                           "flatten_obs": True, "atari": False}}))
    out = _run([str(module_dir), "--episodes", "1"], capsys)
    assert "env: FrozenLake-v1 with env_config {'is_slippery': False} (from the run's config.json, connector " \
           "FlattenObservations)" in out


def test_module_checkpoint_needs_an_env(run_folder, tmp_path, capsys):
    module_dir = tmp_path / "module"
    shutil.copytree(run_folder[0] / "checkpoints" / "3" / "algorithm" / COMPONENT_PREFIX / "default_policy", module_dir)
    _bad([str(module_dir)], capsys, "cannot tell which env the module checkpoint", str(module_dir), "pass --env")
    out = _run([str(module_dir), "--env", "CartPole-v1", "--episodes", "2", "--seed", str(SEED)], capsys)
    assert _mean(out) == pytest.approx(run_folder[1], abs=0.05)
    _bad([str(module_dir), "--env", "CartPol-v1"], capsys, "'CartPol-v1'", "did you mean")


def test_bad_paths_and_flags(run_folder, tmp_path, capsys):
    run = run_folder[0]
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    _bad([str(tmp_path / "missing")], capsys, "no checkpoint at", "got nothing")
    _bad([str(tmp_path / "afile")], capsys, "no checkpoint at", "got a file")
    _bad([str(tmp_path / "empty" / "checkpoints")], capsys, "not a jaxrl_modules checkpoint", "found []")
    _bad([str(run), "--episodes", "0"], capsys, "--episodes", "an int >= 1", "got 0")
    _bad([str(run), "--record", str(tmp_path / "out.avi")], capsys, "--record", ".gif or .mp4", "out.avi")
    _bad([str(run), "--record", str(tmp_path / "nofolder" / "out.gif")], capsys, "--record", "nofolder", "does not exist")
    _bad([str(run), "--record", str(tmp_path)], capsys, "--record", "a directory")


def test_record_without_the_mp4_writer_names_the_package(run_folder, tmp_path, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imageio_ffmpeg" else find_spec(name, *a))
    run, _ = run_folder
    _bad([str(run), "--record", str(tmp_path / "out.mp4")], capsys, "--record", "imageio-ffmpeg", "pip install")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_record_renders_a_gymnasium_env(run_folder, suffix, tmp_path, capsys):
    """CartPole through gymnasium's own pygame renderer, written by imageio (pillow / ffmpeg)."""
    import imageio.v3 as iio

    run, _ = run_folder
    out = _run([str(run), "--episodes", "1", "--record", str(tmp_path / f"ep{suffix}")], capsys)
    frames = int(re.search(r"recorded the first episode \((\d+) frames\)", out).group(1))
    assert frames == _mean(out) + 1  # the reset frame and one per step (CartPole pays 1 per step)
    video = iio.imread(tmp_path / f"ep{suffix}", index=None)
    assert video.ndim == 4 and video.shape[-1] == 3 and video.shape[1:3] == (400, 600) and video.std() > 1
    if suffix == ".mp4":
        assert len(video) == frames


def test_record_writes_the_first_episode_as_a_gif(tmp_path, capsys):
    import imageio.v3 as iio

    algo = PPOConfig().environment("render_env").rl_module(model_config=TINY).training(**SMALL).build()
    path = _saved(algo, tmp_path / "ckpt", iterations=0)
    out = _run([str(path), "--episodes", "2", "--record", str(tmp_path / "ep.gif")], capsys)
    assert "mean return over 2 episodes: 5.0" in out and "recorded the first episode (6 frames)" in out
    frames = iio.imread(tmp_path / "ep.gif", index=None)
    assert frames.shape == (6, 8, 8, 3) and [int(f[0, 0, 0]) for f in frames] == [0, 40, 80, 120, 160, 200]


def test_interrupted_record_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the frames are written: exit 130, no out.gif (nor a temporary file), an older out.gif kept as it was."""
    import imageio.v3 as iio

    algo = PPOConfig().environment("render_env").rl_module(model_config=TINY).training(**SMALL).build()
    path = _saved(algo, tmp_path / "ckpt", iterations=0)
    out = tmp_path / "rec"
    out.mkdir()

    def interrupted(file, frames, **kwargs):
        Path(file).write_bytes(b"GIF89a partial")  # a writer interrupted half way
        raise KeyboardInterrupt

    monkeypatch.setattr(iio, "imwrite", interrupted)
    assert main(["evaluate", str(path), "--episodes", "1", "--record", str(out / "ep.gif")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(out.iterdir()) == []
    (out / "ep.gif").write_bytes(b"older")
    assert main(["evaluate", str(path), "--episodes", "1", "--record", str(out / "ep.gif")]) == 130
    assert [p.name for p in out.iterdir()] == ["ep.gif"] and (out / "ep.gif").read_bytes() == b"older"


def test_seed_out_of_range_names_the_flag_before_loading(tmp_path, capsys):
    expected = "--seed must be an int in [0, 4294967295]"
    _bad([str(tmp_path / "missing"), "--seed", "99999999999999999999"], capsys, expected, "got 99999999999999999999")
    _bad([str(tmp_path / "missing"), "--episodes", "2", "--seed", "-1"], capsys, expected, "got -1")
    algo = PPOConfig().environment("render_env").rl_module(model_config=TINY).training(**SMALL).build()
    path = _saved(algo, tmp_path / "ckpt", iterations=0)
    _bad([str(path), "--seed", "4294967296"], capsys, expected, "got 4294967296")
    out = _run([str(path), "--episodes", "2", "--seed", "4294967295"], capsys)  # resets with seeds 2**32 - 1 and 2**32
    assert "mean return over 2 episodes: 5.0" in out


def test_evaluate_in_a_subprocess(run_folder):
    cli = [sys.executable, "-m", "jaxrl_modules.cli", "evaluate"]
    ok = subprocess.run(cli + [str(run_folder[0]), "--episodes", "2"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "step 3, the newest of 2" in ok.stdout and "mean return over 2 episodes" in ok.stdout
    bad = subprocess.run(cli + [str(Path(run_folder[0]) / "nothing")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_multi_seed_checkpoint_is_evaluated_seed_by_seed(tmp_path, capsys):
    """`train --num-seeds N` checkpoints: multi_seed.json and one algorithm checkpoint per seed_<i>/."""
    from jaxrl_modules.algorithms.multi_seed import MultiSeedAlgorithm

    multi = MultiSeedAlgorithm(PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=2)
                               .rl_module(model_config=TINY).training(**SMALL), 2)
    step = tmp_path / "run" / "checkpoints" / "2" / "algorithm"
    step.mkdir(parents=True)
    multi.write_checkpoint(step)
    out = _run([str(tmp_path / "run"), "--episodes", "2"], capsys)
    assert f"checkpoint: {step} (step 2, the newest of 1" in out and "env: gymnax:CartPole-v1 (from algorithm.json)" in out
    assert "seed_0: mean return over 2 episodes" in out and "seed_1: mean return over 2 episodes" in out
    assert "mean return over 4 episodes (2 seeds)" in out
    out = _run([str(step / "seed_1"), "--episodes", "1"], capsys)
    assert "(one seed of a multi-seed checkpoint)" in out
