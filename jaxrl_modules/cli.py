"""`jaxrl-modules`: train with the default module, evaluate a checkpoint.

    jaxrl-modules train --algo ppo --env CartPole-v1 [--config lr=1e-3 fcnet_hiddens=[64,64]]
    jaxrl-modules evaluate runs/<name>/checkpoints/final --episodes 10
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
NUM_ENVS_DEFAULTS = {"ppo": 8, "dqn": 10, "sac": 1, "bc": 1}
CLI_MODEL_DEFAULTS = {"ppo": {"fcnet_hiddens": [64, 64]}, "bc": {"fcnet_hiddens": [64, 64]},
                      "sac": {"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"},
                      "dqn": {"fcnet_hiddens": [120, 84], "fcnet_activation": "relu"}}


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--config entries are key=value; got {item!r}")
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
        raise SystemExit(str(err)) from None


def _build_config(algo: str, env: str, overrides: dict, num_envs: Optional[int], seed: int,
                  iterations: Optional[int]) -> Any:
    from jaxrl_modules.validation import is_int
    from jaxrl_modules.model_config import DefaultModelConfig

    if algo == "ppo":
        from jaxrl_modules.algorithms.ppo import PPOConfig as Config

        training = dict(PPO_CLI_DEFAULTS)
    elif algo == "dqn":
        from jaxrl_modules.algorithms.dqn import DQNConfig as Config

        training = dict(DQN_CLI_DEFAULTS)
    elif algo == "sac":
        from jaxrl_modules.algorithms.sac import SACConfig as Config

        training = dict(SAC_CLI_DEFAULTS)
    elif algo == "bc":
        from jaxrl_modules.algorithms.bc import BCConfig as Config

        training = dict(lr=1e-3, minibatch_size=250, num_epochs=2)
    else:
        raise SystemExit(f"Unknown --algo {algo!r}; available: ppo, dqn, sac, bc")
    num_envs = NUM_ENVS_DEFAULTS[algo] if num_envs is None else num_envs  # 0 is an error, not the default
    config = Config().environment(env).env_runners(num_envs_per_env_runner=num_envs).debugging(seed=seed)
    if algo == "bc" and "input_" not in overrides:
        raise SystemExit("--algo bc needs recorded transitions: --config input_=<path to .npz or directory>")
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
            raise SystemExit(f"Unknown --config key {key!r}: not a training or model setting of --algo {algo}.{hint} "
                             f"Known keys: training {sorted(config._training_keys())}, model {sorted(model_fields)}")
    batch = training.get("train_batch_size_per_learner") or training.get("train_batch_size")
    if "minibatch_size" in training and "minibatch_size" not in overrides and is_int(batch):
        training["minibatch_size"] = min(training["minibatch_size"], batch)  # our default never exceeds the user's batch
    if training.get("lr_schedule") is not None and training.get("total_iterations") is None:
        training["total_iterations"] = iterations
    config = config.rl_module(model_config=model).training(**training)
    config.validate()
    return config


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["num_env_steps_sampled_lifetime"] for r in rows], [r["episode_return_mean"] for r in rows])
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (mean)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if args.iterations < 1:
        raise SystemExit(f"--iterations must be an int >= 1; got {args.iterations}")
    config = build_config(args.algo, args.env, _parse_overrides(args.config), args.num_envs, args.seed, args.iterations)
    name = args.name or f"{args.algo}_{args.env.replace(':', '_').replace('/', '_')}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(args.runs_dir) / name
    try:
        algo = config.build()  # before any folder is made: a bad env or space leaves nothing behind
    except (TypeError, ValueError) as err:
        raise SystemExit(str(err)) from None
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"Cannot create the run directory {str(run_dir)!r} (--runs-dir {args.runs_dir!r}, --name): "
                         f"{err.strerror or err}; expected a directory path") from None
    stop_reward = args.stop_reward
    if stop_reward is None and not args.env.startswith("gymnax:"):
        import gymnasium as gym

        try:
            stop_reward = gym.spec(args.env).reward_threshold
        except gym.error.Error:
            stop_reward = None
    rows: list[dict] = []
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("steps {task.fields[steps]:>8}"), TextColumn("return {task.fields[ret]:>7}"), TimeElapsedColumn()]
    with Progress(*columns, disable=args.quiet) as progress:
        task = progress.add_task(f"{args.algo} {args.env}", total=args.iterations, steps=0, ret="-")
        for _ in range(args.iterations):
            result = algo.train()
            ret = result["env_runners"]["episode_return_mean"]
            row = {"iteration": result["training_iteration"],
                   "num_env_steps_sampled_lifetime": result["num_env_steps_sampled_lifetime"],
                   "episode_return_mean": ret, "time_this_iter_s": result["time_this_iter_s"]}
            for mid, metrics in result.get("learners", {}).items():
                row.update({f"{mid}/{k}": v for k, v in metrics.items()})
            rows.append(row)
            progress.update(task, advance=1, steps=row["num_env_steps_sampled_lifetime"],
                            ret="-" if math.isnan(ret) else f"{ret:.1f}")
            if stop_reward is not None and not math.isnan(ret) and ret >= stop_reward:
                break
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, run_dir / "learning_curve.png", f"{args.algo.upper()} on {args.env}")
    ckpt = algo.save_to_path(run_dir / "checkpoints" / "final")
    (run_dir / "run.json").write_text(json.dumps({"algo": args.algo, "env": args.env, "iterations": len(rows),
                                                  "final_return": rows[-1]["episode_return_mean"]}, indent=1))
    print(f"trained {len(rows)} iterations, {rows[-1]['num_env_steps_sampled_lifetime']} env steps, "
          f"return {rows[-1]['episode_return_mean']:.1f}")
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

    path = Path(args.checkpoint)
    module_dir = path / COMPONENT_PREFIX / DEFAULT_MODULE_ID if (path / "algorithm.json").is_file() else path
    try:
        module, params = RLModule.from_checkpoint(module_dir)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    env = args.env or _find_env(path)
    if env is None:
        raise SystemExit("Cannot tell which env this checkpoint was trained on; pass --env")
    if env.startswith("gymnax:"):
        raise SystemExit("evaluate rolls out gymnasium envs; pass --env with the gymnasium id (e.g. CartPole-v1)")
    from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig

    if args.episodes < 1:
        raise SystemExit(f"--episodes must be an int >= 1; got {args.episodes}")
    try:
        returns = evaluate_policy(AlgorithmConfig().environment(env), module, params, args.episodes)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"Cannot evaluate {str(path)!r} on --env {env!r}: {err}") from None
    print(f"mean return over {len(returns)} episodes: {np.mean(returns):.1f} (min {np.min(returns):.1f}, "
          f"max {np.max(returns):.1f})")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxrl-modules", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an algorithm with its default module")
    t.add_argument("--algo", default="ppo", help="ppo, dqn, sac, or bc (bc: --config input_=<.npz or dir>)")
    t.add_argument("--env", default="CartPole-v1", help="gymnasium id, or gymnax:<id> for the all-in-jit path")
    t.add_argument("--config", nargs="*", default=[], help="overrides key=value (training or model config keys)")
    t.add_argument("--iterations", type=int, default=200)
    t.add_argument("--stop-reward", type=float, default=None, help="default: the env's reward threshold")
    t.add_argument("--num-envs", type=int, default=None, help="default: ppo 8, dqn 10, sac 1, bc 1")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--name", default=None)
    t.add_argument("--runs-dir", default="runs")
    t.add_argument("--quiet", action="store_true")
    e = sub.add_parser("evaluate", help="roll out a saved module with deterministic actions")
    e.add_argument("checkpoint")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    return train(args) if args.command == "train" else evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
