"""`jaxrl-modules`: train with the default module, evaluate a checkpoint.

    jaxrl-modules train --algo ppo --env CartPole-v1 [--config lr=1e-3 fcnet_hiddens=[64,64]]
    jaxrl-modules evaluate runs/<name>/checkpoints/final --episodes 10
    jaxrl-modules config --algo ppo     # every --config setting with its default and type

A bad command line prints one line `jaxrl-modules: error: <message>` and exits with code 2.
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import difflib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

# Fast-learning PPO settings used by the command (RLlib's PPO defaults learn CartPole slowly).
PPO_CLI_DEFAULTS = dict(lr=1e-3, lambda_=0.95, clip_param=0.2, vf_loss_coeff=0.5, grad_clip=0.5, num_epochs=6,
                        minibatch_size=256, train_batch_size_per_learner=1024, use_kl_loss=False, vf_clip_param=1e6)
DQN_CLI_DEFAULTS = dict(lr=2.5e-4, train_batch_size=128, epsilon=[(0, 1.0), (125000, 0.05)],
                        num_steps_sampled_before_learning_starts=10000, target_network_update_freq=50,
                        replay_buffer_config={"capacity": 10000}, grad_clip=10.0, dueling=False, td_error_loss_fn="mse")
SAC_CLI_DEFAULTS = dict(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, train_batch_size_per_learner=256,
                        num_steps_sampled_before_learning_starts=1000, replay_buffer_config={"capacity": 50000})
BC_CLI_DEFAULTS = dict(lr=1e-3, minibatch_size=250, num_epochs=2)
NUM_ENVS_DEFAULTS = {"ppo": 8, "dqn": 10, "sac": 1, "bc": 1}
CLI_MODEL_DEFAULTS = {"ppo": {"fcnet_hiddens": [64, 64]}, "bc": {"fcnet_hiddens": [64, 64]},
                      "sac": {"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"},
                      "dqn": {"fcnet_hiddens": [120, 84], "fcnet_activation": "relu"}}


PROG = "jaxrl-modules"


class UsageError(SystemExit):
    """A bad command line: `main` prints `jaxrl-modules: error: <message>` (one line) and the
    process exits with code 2, as argparse does. `str(err)` is the message."""

    def __init__(self, message: Any) -> None:
        super().__init__(2)
        self.message = " ".join(str(message).split())

    def __str__(self) -> str:
        return self.message


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (a missing value, an int that is not one) as one line, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--config entries are key=value; got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def build_config(algo: str, env: str, overrides: dict, num_envs: Optional[int], seed: int,
                 iterations: Optional[int] = None) -> Any:
    """The config `train` builds; `iterations` (the --iterations count) is the total that
    `lr_schedule` decays over unless `total_iterations` is given. Bad settings exit with the message."""
    try:
        return _build_config(algo, env, overrides, num_envs, seed, iterations)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None


def _build_config(algo: str, env: str, overrides: dict, num_envs: Optional[int], seed: int,
                  iterations: Optional[int]) -> Any:
    from jaxrl_modules.validation import is_int
    from jaxrl_modules.model_config import DefaultModelConfig

    Config, training = _config_class(algo)
    num_envs = NUM_ENVS_DEFAULTS[algo] if num_envs is None else num_envs  # 0 is an error, not the default
    if not is_int(num_envs) or num_envs < 1:
        raise UsageError(f"--num-envs (num_envs_per_env_runner) must be an int >= 1; got {num_envs}")
    config = Config().environment(env).env_runners(num_envs_per_env_runner=num_envs).debugging(seed=seed)
    if algo == "bc" and "input_" not in overrides:
        raise UsageError("--algo bc needs recorded transitions: --config input_=<path to .npz or directory>")
    model_fields = {f.name for f in dataclasses.fields(DefaultModelConfig)}
    model = dict(CLI_MODEL_DEFAULTS[algo])
    for key, value in overrides.items():
        if key in model_fields:
            model[key] = value
        elif key == "num_envs_per_env_runner":
            config.env_runners(num_envs_per_env_runner=value)
        elif key == "seed":
            config.debugging(seed=value)
        elif key == "input_" and algo == "bc":
            config.offline_data(input_=value)
        elif key in config._training_keys():
            training[key] = value
        else:
            known = sorted(set(config._training_keys()) | model_fields | {"num_envs_per_env_runner", "seed"}
                           | ({"input_"} if algo == "bc" else set()))
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"Unknown --config key {key!r}: not a training or model setting of --algo {algo}.{hint} "
                             f"Known keys: training {sorted(config._training_keys())}, model {sorted(model_fields)}")
    batch = training.get("train_batch_size_per_learner") or training.get("train_batch_size")
    if "minibatch_size" in training and "minibatch_size" not in overrides and is_int(batch):
        training["minibatch_size"] = min(training["minibatch_size"], batch)  # our default never exceeds the user's batch
    if training.get("lr_schedule") is not None and training.get("total_iterations") is None:
        training["total_iterations"] = iterations
    config = config.rl_module(model_config=model).training(**training)
    config.validate()
    return config


def _finite(value: Any) -> Any:
    """`value` with every NaN/inf float replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _loss_column(rows: list[dict]) -> Optional[str]:
    """The loss to plot when no episode finished (BC learns from recorded data and has no returns)."""
    keys = [k for k in rows[0] if k.endswith("loss")]
    for preferred in ("total_loss", "policy_loss"):
        for key in keys:
            if key.split("/")[-1] == preferred:
                return key
    return keys[0] if keys else None


def _plot(rows: list[dict], path: Path, title: str) -> str:
    """Plots the mean episode return, or (no finished episode, as in BC) the loss; returns the y label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    has_returns = any(math.isfinite(r["episode_return_mean"]) for r in rows)
    loss = None if has_returns else _loss_column(rows)
    if loss is None:
        ax.plot([r["num_env_steps_sampled_lifetime"] for r in rows], [r["episode_return_mean"] for r in rows])
        ax.set_xlabel("env steps")
        ax.set_ylabel("episode return (mean)")
    else:
        ax.plot([r["iteration"] for r in rows], [r[loss] for r in rows])
        ax.set_xlabel("training iteration")
        ax.set_ylabel(loss)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return ax.get_ylabel()


def _check_positive(flag: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{flag} must be an int >= 1; got {value}")


def train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    _check_positive("--iterations", args.iterations)
    _check_positive("--log-every", args.log_every)
    config = build_config(args.algo, args.env, _parse_overrides(args.config), args.num_envs, args.seed, args.iterations)
    name = args.name or f"{args.algo}_{args.env.replace(':', '_').replace('/', '_')}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(args.runs_dir) / name
    try:
        algo = config.build()  # before any folder is made: a bad env or space leaves nothing behind
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"Cannot create the run directory {str(run_dir)!r} (--runs-dir {args.runs_dir!r}, --name): "
                         f"{err.strerror or err}; expected a directory path") from None
    stop_reward = args.stop_reward
    if stop_reward is None and not args.env.startswith("gymnax:"):
        import gymnasium as gym

        try:
            stop_reward = gym.spec(args.env).reward_threshold
        except gym.error.Error:
            stop_reward = None
    rows: list[dict] = []
    piped = not sys.stdout.isatty()  # a file or a pipe (cluster logs): plain lines instead of the progress bar
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("steps {task.fields[steps]:>8}"), TextColumn("return {task.fields[ret]:>7}"), TimeElapsedColumn()]
    last_log = (time.perf_counter(), 0)
    with Progress(*columns, disable=args.quiet or piped) as progress:
        task = progress.add_task(f"{args.algo} {args.env}", total=args.iterations, steps=0, ret="-")
        for i in range(args.iterations):
            result = algo.train()
            ret = result["env_runners"]["episode_return_mean"]
            row = {"iteration": result["training_iteration"],
                   "num_env_steps_sampled_lifetime": result["num_env_steps_sampled_lifetime"],
                   "episode_return_mean": ret, "time_this_iter_s": result["time_this_iter_s"]}
            for mid, metrics in result.get("learners", {}).items():
                row.update({f"{mid}/{k}": v for k, v in metrics.items()})
            rows.append(row)
            ret_text = "-" if math.isnan(ret) else f"{ret:.1f}"
            progress.update(task, advance=1, steps=row["num_env_steps_sampled_lifetime"], ret=ret_text)
            done = i + 1 == args.iterations or (stop_reward is not None and not math.isnan(ret) and ret >= stop_reward)
            if piped and not args.quiet and ((i + 1) % args.log_every == 0 or done):
                now, steps = time.perf_counter(), row["num_env_steps_sampled_lifetime"]
                rate = (steps - last_log[1]) / max(now - last_log[0], 1e-9)
                print(f"iteration {row['iteration']}/{args.iterations}  env steps {steps}  return {ret_text}  "
                      f"steps/s {rate:.0f}", flush=True)
                last_log = (now, steps)
            if done:
                break
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, run_dir / "learning_curve.png", f"{args.algo.upper()} on {args.env}")
    ckpt = algo.save_to_path(run_dir / "checkpoints" / "final")
    run = {"algo": args.algo, "env": args.env, "iterations": len(rows), "final_return": rows[-1]["episode_return_mean"]}
    (run_dir / "run.json").write_text(json.dumps(_finite(run), indent=1, allow_nan=False))  # NaN (no episode) -> null
    final = rows[-1]["episode_return_mean"]
    print(f"trained {len(rows)} iterations, {rows[-1]['num_env_steps_sampled_lifetime']} env steps, "
          f"return {'-' if math.isnan(final) else f'{final:.1f}'}")
    print(f"metrics: {run_dir / 'metrics.csv'}\ncurve:   {run_dir / 'learning_curve.png'}\ncheckpoint: {ckpt}")
    return 0


def _find_env(checkpoint: Path) -> Optional[str]:
    for candidate in (checkpoint, *checkpoint.parents):
        run = candidate / "run.json"
        if run.is_file():
            return json.loads(run.read_text())["env"]
    return None


def evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from jaxrl_modules.algorithms.algorithm import COMPONENT_PREFIX
    from jaxrl_modules.algorithms.env_runner import evaluate_policy
    from jaxrl_modules.columns import DEFAULT_MODULE_ID
    from jaxrl_modules.rl_module import RLModule

    _check_positive("--episodes", args.episodes)  # before anything is loaded
    path = Path(args.checkpoint)
    if not path.is_dir():
        raise UsageError(f"No checkpoint at {str(path)!r}: expected a checkpoint directory "
                         f"(runs/<name>/checkpoints/final or a saved module), got {'a file' if path.exists() else 'nothing'}")
    module_dir = path / COMPONENT_PREFIX / DEFAULT_MODULE_ID if (path / "algorithm.json").is_file() else path
    try:
        module, params = RLModule.from_checkpoint(module_dir)
    except ValueError as err:
        raise UsageError(str(err)) from None
    env = args.env or _find_env(path)
    if env is None:
        raise UsageError("Cannot tell which env this checkpoint was trained on; pass --env")
    if env.startswith("gymnax:"):
        raise UsageError("evaluate rolls out gymnasium envs; pass --env with the gymnasium id (e.g. CartPole-v1)")
    from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig

    try:
        returns = evaluate_policy(AlgorithmConfig().environment(env), module, params, args.episodes)
    except (TypeError, ValueError) as err:
        raise UsageError(f"Cannot evaluate {str(path)!r} on --env {env!r}: {err}") from None
    print(f"mean return over {len(returns)} episodes: {np.mean(returns):.1f} (min {np.min(returns):.1f}, "
          f"max {np.max(returns):.1f})")
    return 0


def _config_class(algo: str) -> tuple[type, dict]:
    """The config class of `--algo` and the training settings the command uses instead of its defaults."""
    if algo == "ppo":
        from jaxrl_modules.algorithms.ppo import PPOConfig

        return PPOConfig, dict(PPO_CLI_DEFAULTS)
    if algo == "dqn":
        from jaxrl_modules.algorithms.dqn import DQNConfig

        return DQNConfig, dict(DQN_CLI_DEFAULTS)
    if algo == "sac":
        from jaxrl_modules.algorithms.sac import SACConfig

        return SACConfig, dict(SAC_CLI_DEFAULTS)
    if algo == "bc":
        from jaxrl_modules.algorithms.bc import BCConfig

        return BCConfig, dict(BC_CLI_DEFAULTS)
    raise UsageError(f"Unknown --algo {algo!r}; available: ppo, dqn, sac, bc")


def _model_expected(name: str, annotation: str) -> str:
    """What a DefaultModelConfig field accepts (the checks are in its __post_init__)."""
    if name.endswith("_kwargs"):
        return "None or a dict of initializer kwargs"
    if name.endswith("_initializer"):
        return "None (the default), an initializer name (e.g. 'orthogonal') or a callable"
    if name.endswith("_activation"):
        return "an activation name (e.g. 'tanh', 'relu', 'linear') or a callable"
    if name.endswith("hiddens"):
        return "a list of ints >= 1 (layer sizes)" + ("; may be empty" if name.startswith("head") else "")
    if name == "conv_filters":
        return "None or a list of [out_channels, kernel, stride]"
    return {"bool": "a bool (True or False)", "int": "an int >= 1", "float": "a number > 0"}.get(annotation, annotation)


def show_config(args: argparse.Namespace) -> int:
    """Prints every `--config` setting of `--algo` with the default `train` uses and what it accepts."""
    from jaxrl_modules.model_config import DefaultModelConfig

    config_cls, cli_training = _config_class(args.algo)
    config = config_cls()
    table = config.settings_table()
    lines = [f"# --config settings of `{PROG} train --algo {args.algo}` ({config_cls.__name__}): "
             "key = default  # accepted values", "# training"]

    def line(key: str, default: Any, expected: str, note: str = "") -> str:
        return f"{key} = {default!r}  # {expected}{note}"

    for key in sorted(set(config._training_keys()) | {"num_envs_per_env_runner", "seed"}):
        if key == "num_envs_per_env_runner":
            default, note = NUM_ENVS_DEFAULTS[args.algo], " (also --num-envs)"
        elif key == "seed":
            default, note = 0, " (also --seed)"
        elif key in cli_training:
            default, note = cli_training[key], f" (library default {getattr(config, key, None)!r})"
        else:
            default, note = getattr(config, key, None), ""
        if key == "total_iterations":
            note = " (default: --iterations when lr_schedule is set)"
        lines.append(line(key, default, getattr(table.get(key), "expected", "any value"), note))
    if args.algo == "bc":
        lines.append(line("input_", None, "a path to recorded transitions (.npz or a directory); required"))
    lines.append("# model (DefaultModelConfig)")
    model_defaults = DefaultModelConfig()
    for field in dataclasses.fields(DefaultModelConfig):
        library = getattr(model_defaults, field.name)
        default = CLI_MODEL_DEFAULTS[args.algo].get(field.name, library)
        note = f" (library default {library!r})" if default != library else ""
        lines.append(line(field.name, default, _model_expected(field.name, str(field.type)), note))
    print("\n".join(lines))
    return 0


def _build_parser() -> argparse.ArgumentParser:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0], formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an algorithm with its default module", formatter_class=formatter)
    t.add_argument("--algo", default="ppo", help="ppo, dqn, sac, or bc (bc: --config input_=<.npz or dir>)")
    t.add_argument("--env", default="CartPole-v1", help="gymnasium id, or gymnax:<id> for the all-in-jit path")
    t.add_argument("--config", nargs="*", default=[],
                   help=f"overrides key=value (training or model settings; `{PROG} config --algo A` lists them)")
    t.add_argument("--iterations", type=int, default=200, help="training iterations (at most)")
    t.add_argument("--stop-reward", type=float, default=None, help="stop at this return; None: the env's reward threshold")
    t.add_argument("--num-envs", type=int, default=None, help="None: ppo 8, dqn 10, sac 1, bc 1")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.add_argument("--name", default=None, help="run folder name; None: <algo>_<env>_<time>")
    t.add_argument("--runs-dir", default="runs", help="folder holding the run folders")
    t.add_argument("--log-every", type=int, default=10,
                   help="when stdout is not a terminal, one log line every N iterations instead of the progress bar")
    t.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    e = sub.add_parser("evaluate", help="roll out a saved module with deterministic actions", formatter_class=formatter)
    e.add_argument("checkpoint", help="runs/<name>/checkpoints/final or a saved module directory")
    e.add_argument("--episodes", type=int, default=10, help="episodes to roll out")
    e.add_argument("--env", default=None, help="gymnasium id; None: the env of the run the checkpoint is in")
    c = sub.add_parser("config", help="print every --config setting with its default and type", formatter_class=formatter)
    c.add_argument("--algo", default="ppo", help="ppo, dqn, sac, or bc")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the command; a bad command line prints one line `jaxrl-modules: error: ...` to stderr and
    raises `UsageError` (a SystemExit with code 2), never a traceback."""
    try:
        args = _build_parser().parse_args(argv)
        commands = {"train": train, "evaluate": evaluate, "config": show_config}
        return commands[args.command](args)
    except UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
