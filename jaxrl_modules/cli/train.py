"""`jaxrl-modules train`: the training loop and the run folder it writes."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from jaxrl_modules.cli.config_build import config_from_args
from jaxrl_modules.cli.parser import UsageError, check_positive
from jaxrl_modules.cli.plot import plot


def _finite(value: Any) -> Any:
    """`value` with every NaN/inf float replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    check_positive("--iterations", args.iterations)
    check_positive("--log-every", args.log_every)
    config = config_from_args(args)
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
    plot(rows, run_dir / "learning_curve.png", f"{args.algo.upper()} on {args.env}")
    ckpt = algo.save_to_path(run_dir / "checkpoints" / "final")
    run = {"algo": args.algo, "env": args.env, "iterations": len(rows), "final_return": rows[-1]["episode_return_mean"]}
    (run_dir / "run.json").write_text(json.dumps(_finite(run), indent=1, allow_nan=False))  # NaN (no episode) -> null
    final = rows[-1]["episode_return_mean"]
    print(f"trained {len(rows)} iterations, {rows[-1]['num_env_steps_sampled_lifetime']} env steps, "
          f"return {'-' if math.isnan(final) else f'{final:.1f}'}")
    print(f"metrics: {run_dir / 'metrics.csv'}\ncurve:   {run_dir / 'learning_curve.png'}\ncheckpoint: {ckpt}")
    return 0
