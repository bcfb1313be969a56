"""Many processes, one run (`jax.distributed` on 127.0.0.1, CPU collectives over gloo): two processes of
two emulated devices each train as one process of four does, hold identical params, write one
checkpoint (process 0) that a single process restores; `jaxrl-modules launch` runs the command line
that way. Each run is a pair of subprocesses with a time limit, killed if it is exceeded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.cli.processes import free_port

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent


def _env(devices: int, tmp: Path) -> dict:
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
            "TMPDIR": str(tmp), "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])}


def run_processes(commands: list[list[str]], env: dict, timeout: int = 300) -> list[str]:
    """Starts every command at once; waits for all (killing all past `timeout` s or when one fails)."""
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in commands]
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    return outs


def worker(mode: str, processes: int, devices: int, out: Path) -> list[dict]:
    """Runs tests/multiprocess_worker.py MODE as `processes` processes of `devices` devices each; their results."""
    out.mkdir()
    port = str(free_port())
    run_processes([[sys.executable, str(TESTS / "multiprocess_worker.py"), mode, str(i), str(processes), port, str(out)]
                   for i in range(processes)], _env(devices, out))
    return [json.loads((out / f"result_{i}.json").read_text()) for i in range(processes)]


def params(out: Path, process: int) -> list[np.ndarray]:
    data = np.load(out / f"params_{process}.npz")
    return [data[f"arr_{i}"] for i in range(len(data.files))]


def max_diff(a: list, b: list) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def test_two_processes_of_two_devices_train_as_one_process_of_four(tmp_path):
    """All-in-jit PPO on 2 processes x 2 devices: both processes end with identical params, equal to
    1 process x 4 devices (same seed); metrics are the whole run's on every process; the checkpoint
    process 0 wrote restores in each process (training then goes on identically) and in this
    single-device process."""
    two = worker("jit", 2, 2, tmp_path / "two")
    one = worker("jit", 1, 4, tmp_path / "one")
    assert two[0]["processes"] == 2 and two[0]["devices"] == one[0]["devices"] == 4
    assert max_diff(params(tmp_path / "two", 0), params(tmp_path / "two", 1)) == 0.0  # replicas never drift
    assert max_diff(params(tmp_path / "two", 0), params(tmp_path / "one", 0)) < 1e-5
    for key in ("returns", "episodes", "env_steps"):
        assert two[0][key] == two[1][key] == one[0][key], key
    np.testing.assert_allclose(two[0]["losses"], one[0]["losses"], rtol=1e-5)
    assert one[0]["env_steps"] == [256, 512, 768, 1024]  # 8 envs x 32 steps per iteration, over the 4 devices

    checkpoint = Path(two[0]["checkpoint"])
    assert checkpoint == tmp_path / "two" / "checkpoint" and (checkpoint / "algorithm.json").is_file()
    assert not list((tmp_path / "two").glob("*.tmp*"))
    # This process has one device: the 4-device run's state restores, and its next iteration is the one both
    # processes ran after their own restore.
    config = (PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=8, rollout_fragment_length=32)
              .rl_module(model_config={"fcnet_hiddens": [16]})
              .training(train_batch_size_per_learner=256, minibatch_size=64, num_epochs=2, lr=1e-3))
    algo = config.build()
    algo.restore_from_path(checkpoint)
    assert algo.iteration == 3
    result = algo.train()
    assert result["env_runners"]["episode_return_mean"] == pytest.approx(two[0]["returns"][-1], rel=1e-5)
    assert max_diff([np.asarray(x) for x in jax.tree_util.tree_leaves(algo.get_params())], params(tmp_path / "two", 0)) < 1e-5


def test_learners_must_span_every_process(tmp_path):
    """num_learners left at one learner in a run of 2 processes would train 2 models apart: refused on both."""
    for result in worker("one_learner", 2, 1, tmp_path / "one"):
        assert result["error"].startswith("num_learners must be 'auto' or 2 in a run of 2 processes"), result


def test_a_nan_one_process_meets_stops_every_process(tmp_path):
    """Process 1's env returns a NaN observation: both processes raise NonFiniteError in the same iteration
    (process 0 naming the other process), neither waits on the other."""
    zero, one = worker("nan_on_one", 2, 2, tmp_path / "nan")
    assert len(zero["errors"]) == len(one["errors"]) == 1 and zero["iteration"] == one["iteration"] == 0
    assert "non-finite env observation" in one["errors"][0]
    assert "another process of this multi-process run" in zero["errors"][0]


def test_host_loop_processes_step_their_own_envs(tmp_path):
    """The gymnasium host loop on 2 processes x 2 devices: each process steps its own 2 envs (seeded
    apart) and feeds its devices; params stay identical; episodes and env steps count every process's."""
    two = worker("host", 2, 2, tmp_path / "two")
    assert max_diff(params(tmp_path / "two", 0), params(tmp_path / "two", 1)) == 0.0
    assert two[0]["returns"] == two[1]["returns"] and two[0]["episodes"] == two[1]["episodes"]
    assert two[0]["env_steps"] == [256, 512]  # the global batch (64 per learner x 4), half from each process
    assert two[0]["episodes"][0] >= 8  # CartPole episodes of ~20 steps over 256 steps of both processes' envs


def test_launch_runs_the_command_line_on_two_processes(tmp_path):
    """`jaxrl-modules launch --num-processes 2 --devices-per-process 2 -- train ...`: one run folder,
    written by process 0; the other process's scratch folder is gone."""
    env = _env(1, tmp_path)
    runs = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "jaxrl_modules.cli", "launch", "--num-processes", "2",
                           "--devices-per-process", "2", "--", "train", "--env", "gymnax:CartPole-v1", "--num-learners",
                           "auto", "--num-envs", "8", "--config", "train_batch_size_per_learner=64", "minibatch_size=32",
                           "num_epochs=1", "fcnet_hiddens=[16]", "--iterations", "3", "--runs-dir", str(runs), "--name",
                           "r", "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["r"]
    rows = (runs / "r" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 4  # header + 3 iterations
    assert (runs / "r" / "checkpoints" / "3" / "algorithm" / "algorithm.json").is_file()
    assert json.loads((runs / "r" / "config.json").read_text())["flags"]["num_learners"] == "auto"
    assert not list(tmp_path.glob("jaxrl_modules_process*"))
    assert done.stdout.count("trained 3 iterations") == 1  # process 0 reports


def _train_processes(tmp: Path, *flags: str) -> tuple[list, list[str]]:
    """2 `jaxrl-modules train` processes (2 devices each) of one run, started without `launch`."""
    port = str(free_port())
    common = [sys.executable, "-m", "jaxrl_modules.cli", "train", "--env", "gymnax:CartPole-v1", "--num-learners", "auto",
              "--num-envs", "8", "--config", "train_batch_size_per_learner=64", "minibatch_size=32", "num_epochs=1",
              "fcnet_hiddens=[16]", "--runs-dir", str(tmp / "runs"), "--name", "r", *flags]
    return [subprocess.Popen(common + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                             env=_env(2, tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)], common


def _finish(procs: list, timeout: int = 120) -> list[tuple[int, str]]:
    try:
        return [(p.wait(timeout=timeout), p.communicate()[1]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_signal_to_one_process_stops_every_process_after_the_same_iteration(tmp_path):
    """SIGTERM to process 1 alone: both processes stop after the same iteration, process 0 saves the
    checkpoint and both exit 143 (nothing waits forever on a process that left)."""
    import signal
    import time

    procs, _ = _train_processes(tmp_path, "--iterations", "100000", "--checkpoint-every", "100000")
    metrics = tmp_path / "runs" / "r" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) > 2):
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    codes = _finish(procs)
    assert [c for c, _ in codes] == [143, 143], codes
    steps = [int(p.name) for p in (tmp_path / "runs" / "r" / "checkpoints").iterdir()]
    assert len(steps) == 1 and len(metrics.read_text().splitlines()) == steps[0] + 1  # the last iteration, saved
    assert json.loads((tmp_path / "runs" / "r" / "run.json").read_text())["status"] == "interrupted"


def test_a_command_line_one_process_refuses_stops_them_all(tmp_path):
    """Process 0 refuses to write into a folder it did not make; process 1 (in its scratch folder) stops too."""
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "notes.txt").write_text("mine")
    procs, _ = _train_processes(tmp_path, "--iterations", "2")
    codes = _finish(procs)
    assert [c for c, _ in codes] == [2, 2], codes
    assert "jaxrl-modules: error:" in codes[0][1] and "another process of this multi-process run" in codes[1][1]
    assert [p.name for p in (tmp_path / "runs" / "r").iterdir()] == ["notes.txt"]
