"""IPPO on JaxMARL's MPE simple spread, all in one jit: our PPO over a JaxMARL env against a hand-written
JaxMARL-style IPPO (bench/jaxmarl_ippo.py) of the same hyper-parameters (JaxMARL's ippo_ff_mpe: lr 2.5e-4
annealed, 128 steps, 4 epochs, 4 minibatches, gamma 0.99, lambda 0.95, clip 0.2, entropy 0.01, vf 0.5,
grad-norm 0.5, tanh [64, 64]; 8 envs instead of its 16 on a 2-core CPU), each in a fresh process:
compile time, env steps/s and the team return after the same env steps; then 3 per-agent policies
(stacked) and MAPPO beside the shared policy, and 8 seeds vmapped. The single-seed throughput ratio is
measured in one process, the two compiled programs timed in alternation (fresh-process rates vary by
about ±15% from run to run on this machine).

Run: python bench/marl_mpe.py [--quick]. Writes bench/results/marl_mpe.json.
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
from common import environment, in_subprocess, write_results  # noqa: E402
from jaxmarl_ippo import make_train  # noqa: E402

from jaxrl_modules.algorithms.ppo import PPOConfig  # noqa: E402

ENVS, STEPS = 8, 128
STEPS_PER_ITER = ENVS * STEPS  # env steps (one vectorised step of 8 envs counts 8, whatever the agents)
ITERATIONS = 150


def ours(variant: str = "shared") -> PPOConfig:
    """Our config of JaxMARL's ippo_ff_mpe hyper-parameters; "per_agent": 3 identical policies, one per
    agent (stacked); "mappo": the shared policy with a centralised critic (MAPPOModule)."""
    from jaxrl_modules.rl_module_spec import RLModuleSpec

    model = {"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "vf_share_layers": False,
             "fcnet_kernel_initializer": "orthogonal", "fcnet_kernel_initializer_kwargs": {"scale": 1.414}}
    rows = STEPS_PER_ITER * 3
    cfg = (PPOConfig().environment("jaxmarl:MPE_simple_spread_v3")
           .env_runners(num_envs_per_env_runner=ENVS, rollout_fragment_length=STEPS)
           .rl_module(model_config=model)
           .training(lr=2.5e-4, lr_schedule="linear", gamma=0.99, lambda_=0.95, clip_param=0.2, entropy_coeff=0.01,
                     vf_loss_coeff=0.5, grad_clip=0.5, num_epochs=4, minibatch_size=rows // 4,
                     train_batch_size_per_learner=STEPS_PER_ITER, use_kl_loss=False, vf_clip_param=1e6))
    if variant == "per_agent":  # each policy learns on its agent's rows: 4 minibatches of a third as many
        cfg = cfg.multi_agent(policies={"agent_0", "agent_1", "agent_2"},
                              policy_mapping_fn=lambda agent_id, episode, **kw: agent_id
                              ).training(minibatch_size=STEPS_PER_ITER // 4)
    elif variant == "mappo":
        from jaxrl_modules.algorithms.ppo.mappo import MAPPOModule

        cfg = cfg.rl_module(rl_module_spec=RLModuleSpec(module_class=MAPPOModule))
    return cfg


def measure(train, rngs: jax.Array, iters: int, seeds: int) -> dict:
    """Compile (cold), then one timed run of the compiled `train` (vmapped when `seeds` > 1)."""
    fn = jax.vmap(train) if seeds > 1 else train
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(rngs).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, metrics = compiled(rngs)
    returns = np.asarray(jax.block_until_ready(metrics["episode_return_mean"])).reshape(seeds, iters)
    run_s = time.perf_counter() - t0
    return {"compile_s": compile_s, "run_s": run_s, "env_steps_per_s": seeds * iters * STEPS_PER_ITER / run_s,
            "first_return": float(np.nanmean(returns[:, :10])), "final_return": float(np.nanmean(returns[:, -10:])),
            "final_returns": [float(np.nanmean(r[-10:])) for r in returns]}


def interleaved(iters: int, rounds: int = 5) -> dict:
    """Throughput of the compiled shared-policy IPPO and the reference in one process, timed in
    alternation, the fastest of `rounds` runs each: on a shared 2-core machine the steadier comparison
    (the fresh-process runs give compile times, returns and the 8-seed rates; a long-lived process that
    also ran the vmapped programs was seen to stall here)."""
    key = jax.random.key(0)
    fns = {"reference": jax.jit(make_train(num_envs=ENVS, num_steps=STEPS, num_updates=iters)).lower(key).compile(),
           "shared": jax.jit(ours("shared").build_train_fn(iters)).lower(key).compile()}
    times: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(key))
            times[name].append(time.perf_counter() - t0)
    return {name: iters * STEPS_PER_ITER / min(t) for name, t in times.items()}


def run_part(part: str, iters: int) -> dict:
    if part == "interleaved":
        return interleaved(iters)
    seeds = 8 if part.endswith("_8_seeds") else 1
    rngs = jax.random.split(jax.random.key(0), seeds) if seeds > 1 else jax.random.key(0)
    name = part.removesuffix("_8_seeds")
    if name == "reference" and seeds > 1:  # the init in a program of its own (see jaxmarl_ippo.make_train)
        init, train_from = make_train(num_envs=ENVS, num_steps=STEPS, num_updates=iters, split=True)
        params = jax.jit(jax.vmap(init))(rngs)
        return measure(lambda rng_params: train_from(rng_params[1], rng_params[0]), (rngs, params), iters, seeds)
    if name == "reference":
        return measure(make_train(num_envs=ENVS, num_steps=STEPS, num_updates=iters), rngs, iters, seeds)
    return measure(ours(name).build_train_fn(iters), rngs, iters, seeds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="30 iterations instead of 150 (a smoke run)")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--iters", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    iters = args.iters or (30 if args.quick else ITERATIONS)
    if args.part:
        print(json.dumps(run_part(args.part, iters)))
        return
    def run(part: str) -> dict:
        try:
            return in_subprocess(__file__, part, ["--iters", str(iters)], timeout=90)
        except RuntimeError as err:  # XLA CPU stalls (all threads asleep) were seen here, mostly on reference_8_seeds
            print(err, flush=True)
            return {"stalled": True}

    results = {"environment": environment(), "env": "MPE_simple_spread_v3", "envs": ENVS, "steps": STEPS,
               "iterations": iters, "env_steps": iters * STEPS_PER_ITER}
    repeats = {"reference": [], "shared": []}
    for _ in range(3):  # alternate single-seed runs; report the median run by throughput
        for part in repeats:
            repeats[part].append(run(part))
            print(part, repeats[part][-1], flush=True)
    for part, runs in repeats.items():
        results[part] = sorted(runs, key=lambda r: r["env_steps_per_s"])[len(runs) // 2]
        results[part]["env_steps_per_s_runs"] = [r["env_steps_per_s"] for r in runs]
    for part in ("per_agent", "mappo", "reference_8_seeds", "shared_8_seeds", "per_agent_8_seeds", "mappo_8_seeds"):
        results[part] = run(part)
        print(part, results[part], flush=True)
    ref, ref8 = results["reference"], results["reference_8_seeds"]
    results["interleaved_env_steps_per_s"] = rates = run("interleaved")
    print("interleaved", rates, flush=True)
    results["throughput_ratio"] = rates["shared"] / rates["reference"] if "shared" in rates else None
    both = "stalled" not in ref8 and "stalled" not in results["shared_8_seeds"]
    results["throughput_ratio_8_seeds"] = (results["shared_8_seeds"]["env_steps_per_s"] / ref8["env_steps_per_s"]
                                           if both else None)
    print(f"\nThroughput shared / reference: {results['throughput_ratio']} in one process, in alternation "
          f"(fastest of 5); {results['throughput_ratio_8_seeds']} for 8 vmapped seeds (fresh processes)")
    print(f"\nIPPO, MPE_simple_spread_v3, {ENVS} envs x {STEPS} steps x {iters} iterations = {results['env_steps']} env steps")
    print(f"{'run':<22}{'compile s':>10}{'env steps/s':>13}{'vs reference':>14}{'team return first -> last':>28}")
    for part in ("reference", "shared", "per_agent", "mappo", "reference_8_seeds", "shared_8_seeds",
                 "per_agent_8_seeds", "mappo_8_seeds"):
        r = results[part]
        base = ref8 if part.endswith("_8_seeds") else ref
        if "stalled" in r or "stalled" in base:
            print(f"{part:<22}{'stalled 3 times' if 'stalled' in r else 'reference stalled'}")
            continue
        print(f"{part:<22}{r['compile_s']:>10.1f}{r['env_steps_per_s']:>13,.0f}"
              f"{r['env_steps_per_s'] / base['env_steps_per_s']:>14.2f}{r['first_return']:>15.1f} -> {r['final_return']:.1f}")
    for part in ("reference_8_seeds", "shared_8_seeds", "per_agent_8_seeds", "mappo_8_seeds"):
        finals = np.asarray(results[part].get("final_returns", [np.nan]))
        print(f"8 seeds, final team return (mean of the last 10 iterations), {part}: {finals.mean():.1f} ± {finals.std():.1f}")
    print("wrote", write_results("marl_mpe", results))


if __name__ == "__main__":
    main()
