import csv
import importlib.util
import json
import subprocess
import sys

import pytest

from jaxrl_modules.cli import main


def test_train_then_evaluate(tmp_path, capsys):
    rc = main(["train", "--env", "CartPole-v1", "--iterations", "2", "--runs-dir", str(tmp_path), "--name", "r", "--quiet",
               "--num-envs", "2", "--config", "train_batch_size_per_learner=128", "minibatch_size=64", "fcnet_hiddens=[8]"])
    assert rc == 0
    run = tmp_path / "r"
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["iteration"] for r in rows] == ["1", "2"] and rows[-1]["num_env_steps_sampled_lifetime"] == "256"
    assert (run / "learning_curve.png").stat().st_size > 1000
    final = run / "checkpoints" / "2" / "algorithm"  # checkpoints/<iteration>/algorithm, the last one printed
    assert (final / "algorithm.json").is_file()
    assert f"checkpoint: {final}" in capsys.readouterr().out
    assert main(["evaluate", str(final), "--episodes", "2"]) == 0
    assert "mean return over 2 episodes" in capsys.readouterr().out


def test_train_dqn_on_gymnax(tmp_path):
    rc = main(["train", "--algo", "dqn", "--env", "gymnax:CartPole-v1", "--iterations", "2", "--runs-dir", str(tmp_path),
               "--name", "d", "--quiet", "--num-envs", "4", "--config", "num_steps_sampled_before_learning_starts=100"])
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "d" / "metrics.csv")))
    assert rows[-1]["num_env_steps_sampled_lifetime"] == "2000" and "default_policy/qf_loss" in rows[-1]


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match="Unknown --config key 'lrr'"):
        main(["train", "--iterations", "1", "--runs-dir", str(tmp_path), "--config", "lrr=0.1"])
    with pytest.raises(SystemExit, match="Unknown --algo"):
        main(["train", "--algo", "a3c", "--runs-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="metadata.json is missing|No checkpoint"):
        main(["evaluate", str(tmp_path / "nothing"), "--env", "CartPole-v1"])


@pytest.mark.slow
def test_train_sac_and_bc(tmp_path):
    assert main(["train", "--algo", "sac", "--env", "gymnax:Pendulum-v1", "--iterations", "1", "--runs-dir", str(tmp_path),
                 "--name", "s", "--quiet", "--config", "num_steps_sampled_before_learning_starts=100", "fcnet_hiddens=[8]"]) == 0
    assert (tmp_path / "s" / "checkpoints" / "1" / "algorithm" / "algorithm.json").is_file()
    import jax

    from jaxrl_modules.algorithms.bc import record_transitions
    from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
    from conftest import CARTPOLE_ACT, CARTPOLE_OBS

    policy = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config={"fcnet_hiddens": [4]})
    record_transitions(policy, policy.init(jax.random.key(0)), "CartPole-v1", 300, tmp_path / "data.npz")
    assert main(["train", "--algo", "bc", "--iterations", "2", "--runs-dir", str(tmp_path), "--name", "b", "--quiet",
                 "--config", f"input_='{tmp_path / 'data.npz'}'", "train_batch_size_per_learner=200"]) == 0
    with pytest.raises(SystemExit, match="input_"):
        main(["train", "--algo", "bc", "--runs-dir", str(tmp_path)])


def _module_checkpoint(tmp_path):
    import jax

    from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
    from conftest import CARTPOLE_ACT, CARTPOLE_OBS

    module = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config={"fcnet_hiddens": [4]})
    return module.save_to_path(tmp_path / "module", module.init(jax.random.key(0)))


# Bad command lines: each exits with a message naming the flag or setting, what it accepts and what it got
# (never a traceback), and a run that cannot start leaves no run directory behind.
CLI_CASES = [
    pytest.param(["train", "--iterations", "0"], ("--iterations", "an int >= 1", "got 0"), id="iterations-0"),
    pytest.param(["train", "--iterations", "-3"], ("--iterations", "an int >= 1", "got -3"), id="iterations-negative"),
    pytest.param(["train", "--num-envs", "0", "--iterations", "1"], ("num_envs_per_env_runner", "an int >= 1", "got 0"),
                 id="num-envs-0-not-the-default"),
    pytest.param(["train", "--env", "CartPol-v1", "--iterations", "1"], ("'CartPol-v1'", "gymnasium id", "did you mean"),
                 id="env-typo"),
    pytest.param(["train", "--env", "gymnax:CartPol-v1", "--iterations", "1"], ("gymnax environment", "'CartPol-v1'"),
                 id="gymnax-env-typo"),
    pytest.param(["train", "--algo", "sac", "--env", "CartPole-v1", "--iterations", "1"],
                 ("DefaultSACRLModule", "float Box action space", "Discrete(2)"), id="sac-on-discrete-env"),
    pytest.param(["train", "--iterations", "1", "--config", "fcnet_hidens=[4]"],
                 ("'fcnet_hidens'", "did you mean 'fcnet_hiddens'", "known keys"), id="model-key-typo"),
    pytest.param(["train", "--iterations", "1", "--runs-dir", "{file}"], ("{file}", "run directory", "expected a directory"),
                 id="runs-dir-is-a-file"),
    pytest.param(["evaluate", "{ckpt}", "--env", "CartPole-v1", "--episodes", "0"], ("--episodes", "an int >= 1", "got 0"),
                 id="episodes-0"),
    pytest.param(["evaluate", "{ckpt}", "--env", "Pendulum-v1", "--episodes", "1"],
                 ("'Pendulum-v1'", "expected (B, 4)", "(1, 3)"), id="evaluate-on-other-env"),
    pytest.param(["evaluate", "{ckpt}", "--env", "CartPol-v1", "--episodes", "1"], ("'CartPol-v1'", "did you mean"),
                 id="evaluate-env-typo"),
    pytest.param(["train", "--iterations", "1", "--config", "lr=abc"], ("lr", "a finite number > 0", "'abc'"),
                 id="lr-not-a-number"),
    pytest.param(["train", "--iterations", "1", "--config", "gamma=2"], ("gamma", "[0, 1]", "got 2"), id="gamma-out-of-range"),
    pytest.param(["train", "--iterations", "1", "--config", "fcnet_hiddens=[0]"], ("fcnet_hiddens", "an int >= 1", "got 0"),
                 id="model-setting-out-of-range"),
    pytest.param(["train", "--iterations", "1", "--config", "lr"], ("--config", "key=value", "'lr'"), id="config-not-key-value"),
    pytest.param(["train", "--iterations", "abc"], ("--iterations", "invalid int value", "'abc'"), id="iterations-not-an-int"),
    pytest.param(["train", "--iterations", "1", "--log-every", "0"], ("--log-every", "an int >= 1", "got 0"), id="log-every-0"),
    pytest.param(["train", "--env", "LunarLander-v3", "--iterations", "1"],
                 ("'LunarLander-v3'", "known gymnasium id", "dependency is not installed", "gymnasium[box2d]"),
                 marks=pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="Box2D is installed"),
                 id="env-dependency-missing"),
    pytest.param(["train", "--env", "nosuchpkg:Foo-v0", "--iterations", "1"], ("'nosuchpkg'", "not installed"),
                 id="env-module-missing"),
    pytest.param(["evaluate", "{file}", "--env", "CartPole-v1"], ("no checkpoint at", "{file}", "got a file"),
                 id="evaluate-a-file"),
    pytest.param(["evaluate", "{dir}", "--env", "CartPole-v1"], ("{dir}", "not a jaxrl_modules checkpoint"),
                 id="evaluate-not-a-checkpoint"),
    pytest.param(["train", "--iterations", "1", "--num-learners", "3"],
                 ("--num-learners", "at most the 1 device", "xla_force_host_platform_device_count=3", "got 3"),
                 id="more-learners-than-devices"),
    pytest.param(["train", "--iterations", "1", "--num-learners", "many"], ("--num-learners", "'auto'", "'many'"),
                 id="num-learners-not-an-int"),
    pytest.param(["train", "--iterations", "1", "--num-processes", "2"], ("coordinator", "process_id", "together"),
                 id="num-processes-alone"),
    pytest.param(["train", "--iterations", "1", "--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
                 ("coordinator", "HOST:PORT", "'localhost'"), id="coordinator-without-port"),
    pytest.param(["train", "--iterations", "1", "--coordinator", "127.0.0.1:1234", "--num-processes", "2",
                  "--process-id", "2"], ("process_id", "[0, 1]", "got 2"), id="process-id-out-of-range"),
    pytest.param(["launch", "--num-processes", "2", "--", "evaluate", "x"], ("launch runs a train command", "'evaluate'"),
                 id="launch-not-train"),
    pytest.param(["launch", "--num-processes", "0", "--", "train"], ("--num-processes", "an int >= 1", "got 0"),
                 id="launch-no-processes"),
    pytest.param(["launch", "--", "train", "--process-id", "1"], ("launch sets", "--process-id"), id="launch-process-id"),
]


@pytest.mark.parametrize("argv,fragments", CLI_CASES)
def test_bad_command_line(argv, fragments, tmp_path, capsys):
    from conftest import raises_naming

    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    values = {"{file}": str(tmp_path / "afile"), "{dir}": str(tmp_path / "adir")}
    if "{ckpt}" in argv:
        values["{ckpt}"] = _module_checkpoint(tmp_path)
    argv = [values.get(a, a) for a in argv]
    if argv[0] == "train" and "--runs-dir" not in argv:
        argv += ["--runs-dir", str(tmp_path / "runs")]
    fragments = [values.get(f, f) for f in fragments]
    capsys.readouterr()
    err = raises_naming(SystemExit, lambda: main(argv + (["--quiet"] if argv[0] == "train" else [])), *fragments)
    assert err.code == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith(f"jaxrl-modules: error: {err}"), stderr
    assert not (tmp_path / "runs").exists()


def test_bad_input_and_piped_progress_in_a_subprocess(tmp_path):
    """The real command: a bad setting is one stderr line and exit code 2 (no traceback); with stdout
    piped, progress is one plain line every --log-every iterations instead of the progress bar."""
    cli = [sys.executable, "-m", "jaxrl_modules.cli"]
    bad = subprocess.run(cli + ["train", "--iterations", "1", "--runs-dir", str(tmp_path), "--config", "lr=-1"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines() == ["jaxrl-modules: error: lr must be a finite number > 0; got -1 (int)"]
    assert not list(tmp_path.iterdir())
    ok = subprocess.run(cli + ["train", "--iterations", "3", "--log-every", "2", "--runs-dir", str(tmp_path), "--name", "p",
                               "--num-envs", "2", "--stop-reward", "1e9", "--config", "train_batch_size_per_learner=64",
                               "minibatch_size=64", "fcnet_hiddens=[8]"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    logs = [line for line in ok.stdout.splitlines() if line.startswith("iteration ")]
    assert [line.split()[1] for line in logs] == ["2/3", "3/3"]  # every 2nd iteration and the last
    assert all("env steps" in line and "return" in line and "steps/s" in line for line in logs)
    assert "\x1b[" not in ok.stdout and "━" not in ok.stdout  # no progress bar or terminal codes


def test_help_shows_defaults_and_config_lists_settings(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "(default: 200)" in out and "(default: CartPole-v1)" in out and "--log-every" in out
    from jaxrl_modules.cli import config_class as _config_class
    from jaxrl_modules.model_config import DefaultModelConfig
    import dataclasses

    for algo in ("ppo", "dqn", "sac", "bc"):
        assert main(["config", "--algo", algo]) == 0
        lines = capsys.readouterr().out.splitlines()
        keys = {line.split(" = ")[0] for line in lines if " = " in line and not line.startswith("#")}
        config_cls, _ = _config_class(algo)
        assert set(config_cls()._training_keys()) <= keys
        assert {f.name for f in dataclasses.fields(DefaultModelConfig)} <= keys
        assert all("  # " in line for line in lines if " = " in line)  # each with what it accepts
    assert "lr = 0.001  # a finite number > 0" in "\n".join(lines)
    with pytest.raises(SystemExit, match="Unknown --algo 'a3c'"):
        main(["config", "--algo", "a3c"])


def test_bc_run_json_is_valid_and_curve_plots_the_loss(tmp_path, monkeypatch):
    import jax

    from jaxrl_modules.cli import train as train_command
    from jaxrl_modules.algorithms.bc import record_transitions
    from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
    from conftest import CARTPOLE_ACT, CARTPOLE_OBS

    policy = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config={"fcnet_hiddens": [4]})
    record_transitions(policy, policy.init(jax.random.key(0)), "CartPole-v1", 300, tmp_path / "data.npz")
    labels = []
    plot = train_command.plot
    monkeypatch.setattr(train_command, "plot", lambda *a: labels.append(plot(*a)))
    assert main(["train", "--algo", "bc", "--iterations", "2", "--runs-dir", str(tmp_path), "--name", "b", "--quiet",
                 "--config", f"input_='{tmp_path / 'data.npz'}'", "train_batch_size_per_learner=200", "fcnet_hiddens=[8]"]) == 0
    run = json.loads((tmp_path / "b" / "run.json").read_text(), parse_constant=lambda c: pytest.fail(f"run.json has {c}"))
    assert run["final_return"] is None and run["iterations"] == 2  # no episodes: null, not NaN
    assert labels == ["default_policy/policy_loss"] and (tmp_path / "b" / "learning_curve.png").stat().st_size > 1000


def test_ctrl_c_outside_the_training_loop_is_one_line_and_exit_130(monkeypatch, capsys):
    from jaxrl_modules.cli import evaluate as evaluate_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_command, "evaluate", interrupted)
    assert main(["evaluate", "anything"]) == 130
    assert capsys.readouterr().err == "jaxrl-modules: interrupted (Ctrl-C)\n"

