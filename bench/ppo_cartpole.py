"""PPO on CartPole-v1: (a) all-in-jit with our modules vs a hand-written PureJaxRL-style PPO of
the same hyper-parameters, side by side; (b) the host loop over gymnasium CartPole-v1.

Run: python bench/ppo_cartpole.py [--quick]. Writes bench/results/ppo_cartpole.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from common import environment, in_subprocess, write_results  # noqa: E402
from purejaxrl_ppo import make_train  # noqa: E402

from jaxrl_modules.algorithms.ppo import PPOConfig  # noqa: E402
from ppo_configs import FAST, gymnax_cartpole  # noqa: E402

TOTAL_STEPS = 500_000
STEPS_PER_ITER = 512
SOLVED = 450.0


def solved_at(returns: np.ndarray, window: int = 10) -> int | None:
    """First iteration whose trailing `window`-iteration mean return is ≥ 450."""
    for i in range(window, len(returns) + 1):
        if np.nanmean(returns[i - window:i]) >= SOLVED:
            return i
    return None


def run_jit(train, rng, iters: int) -> dict:
    t0 = time.perf_counter()
    compiled = jax.jit(train).lower(rng).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, metrics = compiled(rng)
    returns = np.asarray(jax.block_until_ready(metrics["episode_return_mean"]))
    run_s = time.perf_counter() - t0
    at = solved_at(returns)
    return {"compile_s": compile_s, "run_s": run_s, "env_steps_per_s": iters * STEPS_PER_ITER / run_s,
            "solved_env_steps": None if at is None else at * STEPS_PER_ITER,
            "solved_wall_s": None if at is None else compile_s + run_s * at / iters,
            "final_return": float(np.nanmean(returns[-20:]))}


def run_vmapped(train, seeds: int, iters: int) -> dict:
    rngs = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(rngs).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, metrics = compiled(rngs)
    returns = np.asarray(jax.block_until_ready(metrics["episode_return_mean"]))
    run_s = time.perf_counter() - t0
    return {"compile_s": compile_s, "run_s": run_s, "env_steps_per_s": seeds * iters * STEPS_PER_ITER / run_s,
            "final_returns": [float(np.nanmean(r[-20:])) for r in returns]}


def host_loop(max_iters: int = 300) -> dict:
    t0 = time.perf_counter()
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=8)
            .rl_module(model_config={"fcnet_hiddens": [64, 64]}).training(**FAST).debugging(seed=0)).build()
    last20 = []
    for _ in range(max_iters):
        result = algo.train()
        last20 = list(algo.runner.completed)[-20:]
        if len(last20) == 20 and np.mean(last20) >= SOLVED:
            break
    solved = len(last20) == 20 and np.mean(last20) >= SOLVED
    return {"solved": bool(solved), "wall_s": time.perf_counter() - t0,
            "env_steps": result["num_env_steps_sampled_lifetime"], "mean_return_last_20": float(np.mean(last20))}


def run_part(part: str, total: int) -> dict:
    """One measurement, in this process."""
    iters = total // STEPS_PER_ITER
    vm_iters = iters // 2
    if part == "ours":
        return run_jit(gymnax_cartpole().build_train_fn(num_iterations=iters), jax.random.key(0), iters)
    if part == "baseline":
        return run_jit(make_train(total_timesteps=iters * STEPS_PER_ITER)[0], jax.random.key(0), iters)
    if part == "ours_8_seeds":
        return run_vmapped(gymnax_cartpole().build_train_fn(num_iterations=vm_iters), 8, vm_iters)
    if part == "baseline_8_seeds":
        return run_vmapped(make_train(total_timesteps=vm_iters * STEPS_PER_ITER)[0], 8, vm_iters)
    if part == "host_loop":
        return host_loop()
    raise ValueError(part)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100k steps instead of 500k (a smoke run)")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    total = args.total or (100_000 if args.quick else TOTAL_STEPS)
    if args.part:
        print(json.dumps(run_part(args.part, total)))
        return
    iters = total // STEPS_PER_ITER
    results = {"environment": environment(), "total_env_steps": iters * STEPS_PER_ITER}
    repeats = {"baseline": [], "ours": []}
    for _ in range(3):  # alternate single-seed runs; report the median run by throughput
        for part in repeats:
            repeats[part].append(in_subprocess(__file__, part, ["--total", str(total)]))
            print(part, repeats[part][-1], flush=True)
    for part, runs in repeats.items():
        results[part] = sorted(runs, key=lambda r: r["env_steps_per_s"])[len(runs) // 2]
        results[part]["env_steps_per_s_runs"] = [r["env_steps_per_s"] for r in runs]
    for part in ("baseline_8_seeds", "ours_8_seeds", "host_loop"):
        results[part] = in_subprocess(__file__, part, ["--total", str(total)])
        print(part, results[part], flush=True)
    results["throughput_ratio"] = results["ours"]["env_steps_per_s"] / results["baseline"]["env_steps_per_s"]
    results["throughput_ratio_8_seeds"] = (results["ours_8_seeds"]["env_steps_per_s"]
                                           / results["baseline_8_seeds"]["env_steps_per_s"])
    o, b = results["ours"], results["baseline"]
    print(f"\nAll-in-jit PPO, gymnax CartPole-v1, {results['total_env_steps']} env steps")
    print(f"{'':>10} | {'compile s':>9} | {'env steps/s':>11} | {'steps to 450':>12} | {'wall to 450 s':>13} | "
          f"{'final return':>12}")
    for name, r in (("ours", o), ("baseline", b)):
        print(f"{name:>10} | {r['compile_s']:>9.2f} | {r['env_steps_per_s']:>11.0f} | {str(r['solved_env_steps']):>12} | "
              f"{(r['solved_wall_s'] or float('nan')):>13.2f} | {r['final_return']:>12.1f}")
    print(f"throughput ratio ours / baseline: {results['throughput_ratio']:.2f}")
    vo, vb = results["ours_8_seeds"], results["baseline_8_seeds"]
    print(f"8 seeds vmapped ({iters // 2 * STEPS_PER_ITER} steps each): ours {vo['env_steps_per_s']:.0f} steps/s "
          f"(compile {vo['compile_s']:.1f} s), baseline {vb['env_steps_per_s']:.0f} steps/s "
          f"(ratio {results['throughput_ratio_8_seeds']:.2f}); ours final returns {[round(x) for x in vo['final_returns']]}")
    h = results["host_loop"]
    print(f"host loop (gymnasium, 8 envs): solved={h['solved']} in {h['wall_s']:.1f} s wall, {h['env_steps']} env steps, "
          f"mean of last 20 episodes {h['mean_return_last_20']:.1f}")
    print(f"wrote {write_results('ppo_cartpole', results)}")


if __name__ == "__main__":
    main()
