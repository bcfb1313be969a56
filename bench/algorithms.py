"""DQN on CartPole-v1 and SAC on Pendulum-v1: env steps and wall time to their solve
thresholds (CartPole >= 450, Pendulum >= -200 mean return), host loop and all-in-jit, with
the number of XLA compilations. Each measurement runs in a fresh process.

Run: python bench/algorithms.py. Writes bench/results/algorithms.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, write_results  # noqa: E402

DQN_SETTINGS = dict(lr=2.5e-4, train_batch_size=128, epsilon=[(0, 1.0), (125000, 0.05)],
                    num_steps_sampled_before_learning_starts=10000, target_network_update_freq=50,
                    replay_buffer_config={"capacity": 10000}, grad_clip=10.0, dueling=False, td_error_loss_fn="mse")
DQN_MODEL = {"fcnet_hiddens": [120, 84], "fcnet_activation": "relu"}
SAC_SETTINGS = dict(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, train_batch_size_per_learner=256,
                    num_steps_sampled_before_learning_starts=1000, replay_buffer_config={"capacity": 50000})
SAC_MODEL = {"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"}


class CompileCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Finished XLA compilation" in record.getMessage():
            self.count += 1


def count_compiles() -> CompileCounter:
    counter = CompileCounter()
    jax.config.update("jax_log_compiles", True)
    for name in ("jax._src.interpreters.pxla", "jax._src.dispatch", "jax"):
        logging.getLogger(name).addHandler(counter)
    return counter


def first_solved(returns: np.ndarray, threshold: float, window: int) -> int | None:
    for i in range(window, len(returns) + 1):
        if np.nanmean(returns[i - window:i]) >= threshold:
            return i
    return None


def jit_run(algo: str) -> dict:
    from jaxrl_modules.algorithms.dqn import DQNConfig
    from jaxrl_modules.algorithms.sac import SACConfig

    if algo == "dqn":
        config = (DQNConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=10, rollout_fragment_length=1)
                  .rl_module(model_config=DQN_MODEL).training(**DQN_SETTINGS))
        iters, steps_per_iter, threshold, window = 40000, 10, 450.0, 2000
    else:
        config = (SACConfig().environment("gymnax:Pendulum-v1").env_runners(num_envs_per_env_runner=1, rollout_fragment_length=1)
                  .rl_module(model_config=SAC_MODEL).training(**SAC_SETTINGS))
        iters, steps_per_iter, threshold, window = 20000, 1, -200.0, 2000
    counter = count_compiles()
    t0 = time.perf_counter()
    compiled = jax.jit(config.build_train_fn(iters)).lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, metrics = compiled(jax.random.key(0))
    returns = np.asarray(jax.block_until_ready(metrics["episode_return_mean"]))
    run_s = time.perf_counter() - t0
    at = first_solved(returns, threshold, window)
    return {"compile_s": compile_s, "run_s": run_s, "env_steps_per_s": iters * steps_per_iter / run_s,
            "solved_env_steps": None if at is None else at * steps_per_iter,
            "solved_wall_s": None if at is None else compile_s + run_s * at / iters, "compiles": counter.count}


def host_run(algo: str) -> dict:
    from jaxrl_modules.algorithms.dqn import DQNConfig
    from jaxrl_modules.algorithms.sac import SACConfig

    counter = count_compiles()
    t0 = time.perf_counter()
    if algo == "dqn":
        algorithm = (DQNConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=10)
                     .rl_module(model_config=DQN_MODEL).training(**DQN_SETTINGS)).build()
        threshold, max_iters = 450.0, 400
    else:
        algorithm = (SACConfig().environment("Pendulum-v1").env_runners(num_envs_per_env_runner=1)
                     .rl_module(model_config=SAC_MODEL).training(**SAC_SETTINGS)).build()
        threshold, max_iters = -200.0, 40
    result, solved = None, False
    for _ in range(max_iters):
        result = algorithm.train()
        recent = list(algorithm.runner.completed)[-10:] if algo == "sac" else list(algorithm.runner.completed)
        if len(recent) >= 10 and np.mean(recent) >= threshold:
            solved = True
            break
    return {"solved": solved, "wall_s": time.perf_counter() - t0, "env_steps": result["num_env_steps_sampled_lifetime"],
            "mean_return": float(np.mean(recent)), "compiles": counter.count}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        mode, algo = args.part.split(":")
        print(json.dumps(jit_run(algo) if mode == "jit" else host_run(algo)))
        return
    results = {"environment": environment()}
    for part in ("jit:dqn", "host:dqn", "jit:sac", "host:sac"):
        out = subprocess.run([sys.executable, __file__, "--part", part], check=True, capture_output=True, text=True).stdout
        results[part] = json.loads(out.strip().splitlines()[-1])
        print(part, results[part], flush=True)
    print(f"\n{'':>10} | {'path':>10} | {'solved':>6} | {'env steps':>9} | {'wall s':>7} | {'compile s':>9} | {'compiles':>8}")
    for part, r in results.items():
        if part == "environment":
            continue
        mode, algo = part.split(":")
        solved = r.get("solved", r.get("solved_env_steps") is not None)
        steps = r.get("env_steps", r.get("solved_env_steps"))
        wall = r.get("wall_s", r.get("solved_wall_s")) or float("nan")
        print(f"{algo:>10} | {mode:>10} | {str(solved):>6} | {str(steps):>9} | {wall:>7.1f} | "
              f"{r.get('compile_s', float('nan')):>9.2f} | {r['compiles']:>8}")
    print(f"wrote {write_results('algorithms', results)}")


if __name__ == "__main__":
    main()
