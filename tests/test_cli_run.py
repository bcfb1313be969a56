"""`jaxrl-modules train` and its run folder: nothing is lost (CSV, TensorBoard, checkpoints, curve) when a
run ends by SIGINT/SIGTERM or a NaN, `--resume` continues a run (bit-identically on the all-in-jit path),
`--eval-every` logs evaluation returns and keeps the best checkpoint, and bad uses are one-line errors."""

import csv
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
import pytest

from jaxrl_modules.cli import main

TINY = ["--num-envs", "2", "--config", "fcnet_hiddens=[8]", "train_batch_size_per_learner=64", "minibatch_size=32",
        "num_epochs=1"]
CLI = [sys.executable, "-m", "jaxrl_modules.cli"]
ROOT = Path(__file__).resolve().parents[1]
# the subprocesses run in tmp_path (relative run paths); the package is importable from the checkout
ENV = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}


pytestmark = pytest.mark.usefixtures("fast_compiles")  # conftest: tiny runs compile faster


def rows_of(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def tensorboard_scalars(logdir: Path) -> dict:
    """tag -> [(step, value)] read back from the TFRecord event files (length, crc, event proto, crc)."""
    from tensorboardX.proto import event_pb2

    out: dict = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def loadable(checkpoint: Path) -> None:
    """The checkpoint is a normal algorithm checkpoint: its module loads and the algorithm restores."""
    from jaxrl_modules.rl_module import RLModule

    assert json.loads((checkpoint / "algorithm.json").read_text())["algorithm"] == "PPO"
    module, params = RLModule.from_checkpoint(checkpoint / "learner_group/learner/rl_module/default_policy")
    out = module.forward_inference(params, {"obs": np.zeros((1, 4), np.float32)})
    assert np.asarray(out["actions"]).shape == (1,)


def start(args: list, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(CLI + ["train"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=tmp_path)


def wait_for_rows(run: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if (run / "metrics.csv").is_file() and len((run / "metrics.csv").read_text().splitlines()) > n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail(f"no {n} rows in {run / 'metrics.csv'} after {timeout} s")


@pytest.mark.slow
def test_sigint_mid_run_saves_everything_and_resume_continues(tmp_path):
    run = tmp_path / "runs" / "r"
    proc = start(["--iterations", "100000", "--stop-reward", "1e9", "--runs-dir", "runs", "--name", "r",
                  "--checkpoint-every", "5", *TINY], tmp_path)
    wait_for_rows(run, 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "SIGINT" in err
    rows = rows_of(run)
    n = len(rows)
    assert n >= 2 and [int(r["iteration"]) for r in rows] == list(range(1, n + 1))  # one row per finished iteration
    final = run / "checkpoints" / str(n) / "algorithm"
    loadable(final)
    line = [x for x in out.splitlines() if x.startswith("jaxrl-modules: stopped by SIGINT")]
    assert len(line) == 1 and str(Path("runs/r/checkpoints") / str(n) / "algorithm") in line[0]
    assert "learning_curve.png" in line[0] and "tensorboard" in line[0] and f"--resume {Path('runs/r')}" in line[0]
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir())[-1] == n  # at most 3 kept, the final one last
    assert len(list((run / "checkpoints").iterdir())) <= 3
    scalars = tensorboard_scalars(run / "tensorboard")
    for tag in ("env_runners/episode_return_mean", "learners/default_policy/policy_loss",
                "learners/default_policy/entropy", "perf/env_steps_per_s", "counters/num_env_steps_sampled_lifetime"):
        assert [s for s, _ in scalars[tag]] == list(range(1, n + 1)), tag
    assert scalars["counters/num_env_steps_sampled_lifetime"][-1][1] == 64 * n
    config = json.loads((run / "config.json").read_text())
    assert config["flags"]["checkpoint_every"] == 5 and config["settings"]["train_batch_size_per_learner"] == 64
    assert config["model_config"]["fcnet_hiddens"] == [8] and config["command"][:2] == ["jaxrl-modules", "train"]

    # resume: the iteration count, env steps and the CSV continue; --iterations is the total
    ok = subprocess.run(CLI + ["train", "--resume", "runs/r", "--iterations", str(n + 2), "--quiet"], cwd=tmp_path, env=ENV,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    rows = rows_of(run)
    assert [int(r["iteration"]) for r in rows] == list(range(1, n + 3))
    assert [int(r["num_env_steps_sampled_lifetime"]) for r in rows[-3:]] == [64 * n, 64 * (n + 1), 64 * (n + 2)]
    assert f"checkpoint: {Path('runs/r/checkpoints') / str(n + 2) / 'algorithm'}" in ok.stdout
    assert "tensorboard: tensorboard --logdir runs" in ok.stdout
    assert [s for s, _ in tensorboard_scalars(run / "tensorboard")["env_runners/episode_return_mean"]][-2:] == [n + 1, n + 2]
    assert json.loads((run / "config.json").read_text())["resumed"][0][2:4] == ["--resume", "runs/r"]


@pytest.mark.slow
def test_sigterm_on_the_all_in_jit_path_exits_143(tmp_path):
    run = tmp_path / "runs" / "t"
    proc = start(["--env", "gymnax:CartPole-v1", "--iterations", "100000", "--runs-dir", "runs", "--name", "t",
                  *TINY], tmp_path)
    wait_for_rows(run, 2, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # a second signal aborts the iteration in progress, still saving
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped by SIGTERM" in out
    n = len(rows_of(run))
    assert [int(r["iteration"]) for r in rows_of(run)] == list(range(1, n + 1))
    loadable(run / "checkpoints" / str(n) / "algorithm")
    assert (run / "learning_curve.png").is_file()


@pytest.mark.slow
def test_gymnax_resume_is_bit_identical(tmp_path, monkeypatch):
    """6 iterations in one go == 3 iterations, SIGINT, then --resume to 6: same params and metrics."""
    from jaxrl_modules.algorithms.ppo.ppo import PPO
    from jaxrl_modules.rl_module import RLModule

    common = ["--env", "gymnax:CartPole-v1", "--iterations", "6", "--checkpoint-every", "3", "--runs-dir",
              str(tmp_path), "--quiet", *TINY]
    assert main(["train", "--name", "whole", *common]) == 0
    train = PPO.train

    def interrupted_after_3(self):
        result = train(self)
        if self.iteration == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the real handler: finish this iteration, save, exit code 130
        return result

    monkeypatch.setattr(PPO, "train", interrupted_after_3)
    previous = signal.getsignal(signal.SIGINT)
    assert main(["train", "--name", "parts", *common]) == 130
    assert signal.getsignal(signal.SIGINT) is previous  # the handlers are restored
    assert len(rows_of(tmp_path / "parts")) == 3 and (tmp_path / "parts" / "checkpoints" / "3").is_dir()
    monkeypatch.setattr(PPO, "train", train)
    assert main(["train", "--resume", str(tmp_path / "parts"), "--quiet"]) == 0
    whole, parts = rows_of(tmp_path / "whole"), rows_of(tmp_path / "parts")
    assert len(whole) == len(parts) == 6
    for a, b in zip(whole, parts):
        assert {k: v for k, v in a.items() if k != "time_this_iter_s"} == {k: v for k, v in b.items() if k != "time_this_iter_s"}
    module_dir = "checkpoints/6/algorithm/learner_group/learner/rl_module/default_policy"
    _, p1 = RLModule.from_checkpoint(tmp_path / "whole" / module_dir)
    _, p2 = RLModule.from_checkpoint(tmp_path / "parts" / module_dir)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), p1, p2)


def test_eval_every_logs_evaluation_and_keeps_the_best_checkpoint(tmp_path, monkeypatch, capsys):
    from jaxrl_modules.algorithms.ppo.ppo import PPO

    evaluate, real = PPO.evaluate, []
    scripted = iter([50.0, 10.0, 20.0, 30.0])

    def scripted_evaluate(self, episodes=None):
        result = evaluate(self, episodes)  # the real evaluation runs; its return is replaced to fix the ranking
        real.append(result)
        if len(real) == 1:
            return result  # the start-up check that the run can evaluate
        return {"env_runners": {**result["env_runners"], "episode_return_mean": next(scripted)}}

    monkeypatch.setattr(PPO, "evaluate", scripted_evaluate)
    assert main(["train", "--iterations", "8", "--eval-every", "2", "--eval-episodes", "2", "--checkpoint-every", "100",
                 "--stop-reward", "1e9", "--runs-dir", str(tmp_path), "--name", "e", "--quiet", *TINY]) == 0
    assert all(r["env_runners"]["num_episodes"] == 2 and np.isfinite(r["env_runners"]["episode_return_mean"])
               for r in real[1:])
    rows = rows_of(tmp_path / "e")
    assert [r["evaluation/episode_return_mean"] for r in rows] == ["", "50.0", "", "10.0", "", "20.0", "", "30.0"]
    assert tensorboard_scalars(tmp_path / "e" / "tensorboard")["evaluation/episode_return_mean"] == [
        (2, 50.0), (4, 10.0), (6, 20.0), (8, 30.0)]
    # saved at each evaluation; the latest 3 (4, 6, 8) plus the best by evaluation return (2) are kept
    assert sorted(int(p.name) for p in (tmp_path / "e" / "checkpoints").iterdir()) == [2, 4, 6, 8]
    out = capsys.readouterr().out
    assert f"best checkpoint (evaluation return 50.0): {tmp_path / 'e' / 'checkpoints' / '2' / 'algorithm'}" in out
    loadable(tmp_path / "e" / "checkpoints" / "2" / "algorithm")


def test_eval_every_on_a_run_that_cannot_evaluate_is_refused_at_start(tmp_path, monkeypatch, capsys):
    from jaxrl_modules.algorithms.ppo.ppo import PPO

    def cannot(self, episodes=None):
        raise ValueError("evaluate() supports single-agent envs")

    monkeypatch.setattr(PPO, "evaluate", cannot)
    with pytest.raises(SystemExit) as info:
        main(["train", "--iterations", "2", "--eval-every", "1", "--runs-dir", str(tmp_path / "runs"), "--quiet", *TINY])
    assert info.value.code == 2 and "--eval-every 1" in str(info.value) and "single-agent" in str(info.value)
    assert not (tmp_path / "runs").exists()


class NanRewardAfter(gym.Wrapper):
    def __init__(self, env, after):
        super().__init__(env)
        self.after, self.steps = after, 0

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        self.steps += 1
        return obs, float("nan") if self.steps >= self.after else reward, term, trunc, info


def test_nan_in_training_keeps_csv_checkpoint_and_curve(tmp_path, capsys):
    from jaxrl_modules.envs.registry import register_env

    register_env("cli_nan_reward_env", lambda config: NanRewardAfter(gym.make("CartPole-v1"), after=80))
    # 2 envs x 32 steps per iteration: env copy 0's 80th step is in iteration 3
    rc = main(["train", "--env", "cli_nan_reward_env", "--iterations", "10", "--runs-dir", str(tmp_path), "--name", "n",
               "--quiet", *TINY])
    assert rc == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "training iteration 3" in err and "env reward" in err
    assert str(tmp_path / "n" / "checkpoints" / "2" / "algorithm") in err
    assert [r["iteration"] for r in rows_of(tmp_path / "n")] == ["1", "2"]
    loadable(tmp_path / "n" / "checkpoints" / "2" / "algorithm")
    assert (tmp_path / "n" / "learning_curve.png").is_file()
    assert json.loads((tmp_path / "n" / "run.json").read_text())["status"] == "nonfinite"


def refused(capsys, argv, *fragments, absent=()):
    """`main(argv)` exits with code 2 and one line `jaxrl-modules: error: ...` holding every fragment; returns it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and err.startswith("jaxrl-modules: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment.lower() in err.lower(), (fragment, err)
    for fragment in absent:
        assert fragment.lower() not in err.lower(), (fragment, err)
    return err


def snapshot(folder: Path) -> dict:
    """Every path under `folder` -> (bytes, mtime) of a file, None for a folder: equal snapshots = nothing written."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def test_run_name_reuse_overwrite_and_bad_resume_paths(tmp_path, capsys):
    runs = tmp_path / "runs"
    base = ["train", "--iterations", "1", "--runs-dir", str(runs), "--quiet", *TINY]
    assert main(base + ["--name", "r"]) == 0
    before = snapshot(runs / "r")
    refused(capsys, base + ["--name", "r"], str(runs / "r"), "already exists", "--overwrite", "--resume")
    refused(capsys, base + ["--name", "r", "--overwrite", "--config", "lr=-1"], "lr", "> 0")  # a bad start keeps the old run
    assert snapshot(runs / "r") == before
    time.sleep(0.01)
    assert main(base + ["--name", "r", "--overwrite"]) == 0
    assert len(rows_of(runs / "r")) == 1 and len(list((runs / "r" / "tensorboard").iterdir())) == 1  # replaced, not added to
    assert snapshot(runs / "r")["run.json"][1] > before["run.json"][1]
    (runs / "notes").mkdir()
    (runs / "notes" / "todo.txt").write_text("mine")
    refused(capsys, ["train", "--resume", str(tmp_path / "missing")], "--resume", str(tmp_path / "missing"), "got nothing")
    refused(capsys, ["train", "--resume", str(runs / "notes" / "todo.txt")], "--resume", "got a file")
    refused(capsys, ["train", "--resume", str(runs / "notes")], "--resume", "not a run folder", "config.json")
    refused(capsys, ["train", "--resume", str(runs / "r"), "--env", "Pendulum-v1"], "--env cannot change on --resume",
            "'CartPole-v1'", "'Pendulum-v1'")
    refused(capsys, ["train", "--resume", str(runs / "r"), "--algo", "dqn"], "--algo cannot change", "'ppo'", "'dqn'")
    refused(capsys, ["train", "--resume", str(runs / "r"), "--overwrite"], "--overwrite and --resume")


def test_a_refused_resume_writes_nothing(tmp_path, capsys):
    """Review finding: `--resume` of a folder with only config.json left an empty checkpoints/ behind."""
    runs = tmp_path / "runs"
    assert main(["train", "--iterations", "1", "--runs-dir", str(runs), "--name", "r", "--quiet", *TINY]) == 0
    (runs / "cfgonly").mkdir()
    (runs / "cfgonly" / "config.json").write_text((runs / "r" / "config.json").read_text())
    before = snapshot(runs)
    refused(capsys, ["train", "--resume", str(runs / "cfgonly")], "--resume", str(runs / "cfgonly"), "no checkpoint")
    refused(capsys, ["train", "--resume", str(runs / "r")], "--iterations 1", "already has 1 iterations", "larger --iterations")
    refused(capsys, ["train", "--resume", str(runs / "r"), "--iterations", "2", "--config", "lr=-1"], "--config cannot change")
    assert snapshot(runs) == before  # no checkpoints/ made, nothing rewritten


def test_overwrite_deletes_only_a_folder_train_wrote_all_of(tmp_path, capsys):
    """Review findings: `--overwrite` deleted a folder that merely had a config.json; a file or a path-like
    --name gave wrong advice or escaped --runs-dir. All refused before anything is built or written."""
    runs = tmp_path / "runs"
    base = ["train", "--iterations", "1", "--runs-dir", str(runs), "--quiet", *TINY]
    proj = runs / "proj"  # the reviewer's folder, exactly
    (proj / "src").mkdir(parents=True)
    (proj / "config.json").write_text('{"model":"bert"}\n')
    (proj / "src" / "main.py").write_text("print(1)\n")
    before = snapshot(runs)
    refused(capsys, base + ["--name", "proj", "--overwrite"], repr(str(proj)), "not a run folder", "config.json (not train's",
            "src/", "nothing was deleted", "new --name", "--runs-dir")
    refused(capsys, base + ["--name", "proj"], repr(str(proj)), "not a run folder", "src/", absent=["--resume", "--overwrite"])
    assert snapshot(runs) == before  # byte-identical, same mtimes
    # train's own config.json, but a file train never writes beside it (or inside tensorboard/ or checkpoints/)
    train_like = {"command": ["jaxrl-modules", "train"], "flags": {}, "settings": {}, "config_class": "PPOConfig"}
    for extra in ("notes.txt", "tensorboard/notes.txt", "checkpoints/notes.txt"):
        folder = runs / extra.replace("/", "_")
        (folder / "tensorboard").mkdir(parents=True)
        (folder / "checkpoints").mkdir()
        (folder / "config.json").write_text(json.dumps(train_like))
        (folder / extra).write_text("mine")
        refused(capsys, base + ["--name", folder.name, "--overwrite"], "not a run folder", extra)
        assert (folder / extra).read_text() == "mine"
    (runs / "afile").write_text("data")
    for overwrite in ([], ["--overwrite"]):
        refused(capsys, base + ["--name", "afile", *overwrite], repr(str(runs / "afile")), "is a file", "new --name",
                "--runs-dir", absent=["--resume", "already exists"])
    assert (runs / "afile").read_text() == "data"
    for name in ("../escape", "a/b", "", " \t", ".", ".."):
        refused(capsys, base + ["--name", name], "--name", "one folder name", repr(name))
    refused(capsys, ["train", "--runs-dir", str(runs / "afile"), "--name", "x"], "--runs-dir", "is a file")
    refused(capsys, ["train", "--runs-dir", str(runs / "afile" / "sub"), "--name", "x"], "--runs-dir", "inside", "a file")
    refused(capsys, ["train", "--runs-dir", "", "--name", "x"], "--runs-dir", "directory path", "''")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # ../escape made nothing
    assert sorted(p.name for p in runs.iterdir()) == sorted(["proj", "afile", "notes.txt", "tensorboard_notes.txt",
                                                             "checkpoints_notes.txt"])


def test_resume_keeps_the_first_command_and_accepts_equivalent_lists(tmp_path, capsys):
    """Review findings: config.json's command was replaced on each resume; an equivalent --config written
    differently was refused; settings disagreed with what runs (evaluation_duration, train_batch_size)."""
    from jaxrl_modules.cli.run_folder import _same

    runs, run = tmp_path / "runs", tmp_path / "runs" / "c"
    first = ["train", "--iterations", "1", "--runs-dir", str(runs), "--name", "c", "--eval-episodes", "3", "--quiet", *TINY]
    assert main(first) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["command"] == ["jaxrl-modules", *first] and config["resumed"] == []
    assert config["settings"]["evaluation_duration"] == 3 and config["settings"]["train_batch_size_per_learner"] == 64
    assert "train_batch_size" not in config["settings"] and "train_batch_size" in config["unused_settings"]
    again = ["train", "--resume", str(run), "--iterations", "2", "--quiet", "--runs-dir", str(runs) + os.sep,
             "--config", "num_epochs=1", "minibatch_size=32", "fcnet_hiddens=[ 8 ]", "train_batch_size_per_learner=64"]
    assert main(again) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["command"] == ["jaxrl-modules", *first] and config["flags"]["iterations"] == 1
    assert config["resumed"] == [["jaxrl-modules", *again]] and config["run_flags"]["iterations"] == 2
    assert [int(r["iteration"]) for r in rows_of(run)] == [1, 2]
    before = snapshot(run)
    # the run-control flags of the last resume are kept: without --iterations the total is still 2
    refused(capsys, ["train", "--resume", str(run)], "--iterations 2", "already has 2 iterations")
    refused(capsys, ["train", "--resume", str(run), "--iterations", "3", "--config", "num_epochs=2", "minibatch_size=32",
                     "fcnet_hiddens=[8]", "train_batch_size_per_learner=64"], "--config cannot change", "num_epochs=1")
    assert snapshot(run) == before
    assert _same("env_config", ["b=[1,2]", "a=1e-3"], ["a=0.001", "b=[ 1, 2 ]"])
    assert not _same("env_config", ["a=1"], ["a=2"]) and not _same("config", [], ["lr=1"])


@pytest.mark.parametrize("flags,fragments", [
    (["--checkpoint-every", "0"], ("--checkpoint-every", "an int >= 1", "got 0")),
    (["--eval-episodes", "0"], ("--eval-episodes", "an int >= 1", "got 0")),
    (["--eval-every", "-1"], ("--eval-every", "an int >= 0", "got -1")),
    (["--num-seeds", "0"], ("--num-seeds", "an int >= 1", "got 0")),
    (["--num-seeds", "2"], ("--num-seeds 2", "gymnax or JaxMARL env", "'CartPole-v1'")),
    (["--checkpoint-every", "x"], ("--checkpoint-every", "invalid int value", "'x'")),
    (["--stop-reward", "nan"], ("--stop-reward", "a finite number", "got nan")),
    (["--stop-reward", "inf"], ("--stop-reward", "a finite number", "got inf")),
    (["--stop-reward=-inf"], ("--stop-reward", "a finite number", "got -inf")),
])
def test_bad_run_flags(flags, fragments, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--iterations", "1", "--runs-dir", str(tmp_path / "runs"), "--quiet", *flags])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert all(f.lower() in err.lower() for f in fragments), err
    assert not (tmp_path / "runs").exists()


def test_curve_labels_the_return_and_draws_evaluation_and_seed_band(tmp_path):
    from jaxrl_modules.cli.plot import RETURN_LABEL, plot

    rows = [{"iteration": i, "num_env_steps_sampled_lifetime": 100 * i, "episode_return_mean": float(i),
             "seed_0/episode_return_mean": i - 1.0, "seed_1/episode_return_mean": i + 1.0,
             "evaluation/episode_return_mean": float(2 * i) if i % 2 == 0 else float("nan")} for i in range(1, 6)]
    assert plot(rows, tmp_path / "c.png", "t") == RETURN_LABEL
    assert "mean of the episodes ended in each iteration" in RETURN_LABEL
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_num_seeds_steps_per_seed_column_and_curve_axis(tmp_path, monkeypatch):
    """Review finding: with N seeds the CSV's env steps are summed over seeds; the curve's axis is per seed."""
    import matplotlib.axes

    from jaxrl_modules.cli.metrics_log import csv_row
    from jaxrl_modules.cli.plot import _plot

    seed = {"num_env_steps_sampled_lifetime": 64, "env_runners": {"episode_return_mean": 9.0}}
    result = {"training_iteration": 1, "num_env_steps_sampled_lifetime": 256, "time_this_iter_s": 0.1,
              "env_runners": {"episode_return_mean": 9.0}, "seeds": [seed] * 4}
    row = csv_row(result)
    assert list(row)[:3] == ["iteration", "num_env_steps_sampled_lifetime", "num_env_steps_sampled_lifetime_per_seed"]
    assert row["num_env_steps_sampled_lifetime"] == 256 and row["num_env_steps_sampled_lifetime_per_seed"] == 64
    assert "num_env_steps_sampled_lifetime_per_seed" not in csv_row({**result, "seeds": []})
    xs = []
    plot_line = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda self, x, *a, **k: (xs.append(list(x)), plot_line(self, x, *a, **k))[1])
    rows = [{"iteration": i, "num_env_steps_sampled_lifetime": 256 * i, "num_env_steps_sampled_lifetime_per_seed": 64 * i,
             "episode_return_mean": 1.0, "seed_0/episode_return_mean": 1.0, "seed_1/episode_return_mean": 1.0,
             "seed_2/episode_return_mean": 1.0, "seed_3/episode_return_mean": 1.0} for i in (1, 2)]
    assert _plot(rows, tmp_path / "s.png", "t")[0] == "env steps per seed" and xs[-1] == [64, 128]
    for r in rows:
        del r["num_env_steps_sampled_lifetime_per_seed"]  # a CSV without the column: the summed count / the seeds
    assert _plot(rows, tmp_path / "s.png", "t")[0] == "env steps per seed" and xs[-1] == [64, 128]
    assert _plot([{k: v for k, v in r.items() if not k.startswith("seed_")} for r in rows], tmp_path / "s.png", "t")[0] == \
        "env steps"


@pytest.mark.slow
def test_num_seeds_writes_per_seed_columns(tmp_path):
    pytest.importorskip("jaxrl_modules.algorithms.multi_seed")
    assert main(["train", "--env", "gymnax:CartPole-v1", "--num-seeds", "4", "--iterations", "2", "--runs-dir", str(tmp_path),
                 "--name", "s", "--quiet", *TINY]) == 0
    rows = rows_of(tmp_path / "s")
    seeds = [f"seed_{i}/episode_return_mean" for i in range(4)]
    assert len(rows) == 2 and all(c in rows[0] for c in seeds)
    assert [int(r["num_env_steps_sampled_lifetime"]) for r in rows] == [
        4 * int(r["num_env_steps_sampled_lifetime_per_seed"]) for r in rows]
    means = [np.nanmean([float(r[c]) for c in seeds]) for r in rows]
    np.testing.assert_allclose(means, [float(r["episode_return_mean"]) for r in rows], rtol=1e-6)
    assert set(tensorboard_scalars(tmp_path / "s" / "tensorboard")) >= set(seeds)
    assert sorted(p.name for p in (tmp_path / "s" / "checkpoints" / "2" / "algorithm").iterdir() if p.is_dir()) == [
        f"seed_{i}" for i in range(4)]


def test_metrics_log_adds_late_columns_and_drops_rows_after_the_resumed_iteration(tmp_path):
    from jaxrl_modules.cli.metrics_log import MetricsLog, csv_row

    def result(i, **learner):
        return {"training_iteration": i, "num_env_steps_sampled_lifetime": 10 * i, "time_this_iter_s": 0.5,
                "env_runners": {"episode_return_mean": float(i)}, "learners": {"default_policy": {"loss": 1.0, **learner}}}

    path, tb = tmp_path / "metrics.csv", tmp_path / "tb"
    log = MetricsLog(path, tb, ["evaluation/episode_return_mean"])
    for i in (1, 2, 3):
        r = result(i) if i < 3 else result(i, lr=0.1)  # a metric that first appears in iteration 3
        log.write(r, csv_row(r))
        assert len(path.read_text().splitlines()) == i + 1  # flushed row by row
    log.close()
    rows = rows_of(tmp_path)
    assert list(rows[0])[-2:] == ["evaluation/episode_return_mean", "default_policy/lr"]
    assert [r["default_policy/lr"] for r in rows] == ["", "", "0.1"]
    log = MetricsLog(path, tb, ["evaluation/episode_return_mean", "seed_0/episode_return_mean"], resume_at=2)
    assert [r["iteration"] for r in log.rows] == [1, 2] and log.last_steps == 20
    r = result(3)
    log.write(r, csv_row(r))
    log.close()
    rows = rows_of(tmp_path)
    assert [r["iteration"] for r in rows] == ["1", "2", "3"] and "seed_0/episode_return_mean" in rows[0]
    scalars = tensorboard_scalars(tb)
    assert sorted(scalars["perf/env_steps_per_s"])[0] == (1, 20.0)  # 10 steps in 0.5 s
    assert sorted(s for s, _ in scalars["learners/default_policy/loss"]) == [1, 2, 3, 3]  # the new writer purges step 3


def test_a_signal_before_training_starts_writes_nothing(tmp_path, monkeypatch, capsys):
    from jaxrl_modules.algorithms.ppo import PPOConfig

    build = PPOConfig.build

    def build_then_sigterm(self):
        algo = build(self)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the algorithm builds (compiles)
        return algo

    monkeypatch.setattr(PPOConfig, "build", build_then_sigterm)
    assert main(["train", "--iterations", "2", "--runs-dir", str(tmp_path / "runs"), "--quiet", *TINY]) == 143
    assert "stopped by SIGTERM before training started; nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
