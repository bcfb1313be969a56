"""Scaling out: env steps/s of all-in-jit PPO over 1, 2, 4, 8 devices (`learners(num_learners=N)`).

    python bench/scaling.py [--quick] [--envs gymnax:CartPole-v1 jaxmarl:MPE_simple_spread_v3]

- weak scaling: a fixed number of envs per device (the global batch grows with the devices);
- strong scaling: a fixed global number of envs (and batch), split over the devices;
- 2 processes on this machine (`jax.distributed`, CPU collectives over gloo), each with half the devices;
- the baselines, in the same run: our 1-device run, and the hand-written PureJaxRL PPO
  (`bench/purejaxrl_ppo.py`, CartPole) on the same envs and steps.

Each measurement runs in a fresh process. On CPU the devices are emulated
(`XLA_FLAGS=--xla_force_host_platform_device_count=N`): they share this machine's cores, so the
numbers measure the overhead of sharding (collectives, resharding), not a speed-up. On an accelerator
the device counts above the machine's are skipped. Results: bench/results/scaling[_<device>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).parent
STEPS = 128  # rollout steps per env per iteration


def _child_env(devices: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH.parent), str(BENCH), os.environ.get("PYTHONPATH", "")]))
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])  # CPU only; ignored on GPU
    return env


def run_part(args: list[str], devices: int, processes: int = 1, timeout: float = 600) -> dict:
    """`scaling.py --part ...` in fresh process(es) (`processes` > 1: one jax.distributed run on 127.0.0.1, each
    with devices / processes emulated devices); the JSON process 0 prints. A stalled XLA CPU process is retried."""
    from jaxrl_modules.cli.processes import free_port

    for attempt in range(3):
        port = str(free_port())
        cmds = [[sys.executable, __file__, *args, "--process", str(i), "--processes", str(processes), "--port", port]
                for i in range(processes)]
        procs = [subprocess.Popen(c, env=_child_env(devices // processes), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for c in cmds]
        try:
            outs = [p.communicate(timeout=timeout) for p in procs]
        except subprocess.TimeoutExpired:
            print(f"{args}: stalled for {timeout:.0f} s (attempt {attempt + 1} of 3); retrying", flush=True)
            continue
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        if procs[0].returncode != 0:
            raise RuntimeError(f"{args} failed:\n{outs[0][1][-3000:]}")
        return json.loads(outs[0][0].strip().splitlines()[-1])
    raise RuntimeError(f"{args}: stalled three times")


# ----------------------------------------------------------------- parts (run in a child process)
def ours(env: str, devices: int, envs: int, iters: int, process: int, processes: int, port: str) -> dict:
    if processes > 1:
        from jaxrl_modules import distributed

        distributed.initialize(f"127.0.0.1:{port}", processes, process)
    import jax
    import numpy as np

    from jaxrl_modules.algorithms.ppo import PPOConfig

    batch = envs * STEPS
    config = (PPOConfig().environment(env).env_runners(num_envs_per_env_runner=envs, rollout_fragment_length=STEPS)
              .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_kernel_initializer": "orthogonal",
                                       "fcnet_kernel_initializer_kwargs": {"scale": 1.414}})
              .training(lr=2.5e-4, gamma=0.99, lambda_=0.95, clip_param=0.2, entropy_coeff=0.01, vf_loss_coeff=0.5,
                        grad_clip=0.5, num_epochs=4, use_kl_loss=False, vf_clip_param=1e6,
                        train_batch_size_per_learner=batch // devices, minibatch_size=batch // 4 // devices)
              .learners(num_learners=devices))
    train = config.build_train_fn(iters)
    rng = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = jax.jit(train).lower(rng).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(rng))  # one warm run: the timed run below is steady state
    t0 = time.perf_counter()
    params, metrics = jax.block_until_ready(compiled(rng))
    run_s = time.perf_counter() - t0
    leaf = jax.tree_util.tree_leaves(params)[0]
    returns = np.asarray(metrics["episode_return_mean"])
    steps = int(np.asarray(metrics["num_env_steps_sampled_lifetime"])[-1])
    return {"devices": len(leaf.sharding.device_set), "processes": jax.process_count(), "envs": envs,
            "platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind,
            "compile_s": compile_s, "run_s": run_s, "env_steps": steps, "env_steps_per_s": steps / run_s,
            "final_return": float(np.nanmean(returns[-5:]))}


def baseline(envs: int, iters: int) -> dict:
    """The hand-written PureJaxRL PPO on one device, same envs, steps and iterations."""
    import jax
    import numpy as np

    from purejaxrl_ppo import make_train

    train, updates = make_train(num_envs=envs, num_steps=STEPS, total_timesteps=iters * envs * STEPS)
    rng = jax.random.key(0)
    compiled = jax.jit(train).lower(rng).compile()
    jax.block_until_ready(compiled(rng))
    t0 = time.perf_counter()
    _, metrics = jax.block_until_ready(compiled(rng))
    run_s = time.perf_counter() - t0
    return {"devices": 1, "envs": envs, "run_s": run_s, "env_steps_per_s": updates * envs * STEPS / run_s,
            "device_kind": jax.devices()[0].device_kind,
            "final_return": float(np.nanmean(np.asarray(metrics["episode_return_mean"])[-5:]))}


# ----------------------------------------------------------------- driver
def device_facts() -> dict:
    """The accelerator this machine has (in a child, so this process keeps no backend)."""
    code = ("import jax, json; d = jax.devices(); print(json.dumps({'platform': d[0].platform, "
            "'count': len(d), 'kind': d[0].device_kind}))")
    out = subprocess.run([sys.executable, "-c", code], env=_child_env(1), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and device counts (a smoke run)")
    parser.add_argument("--envs", nargs="*", default=["gymnax:CartPole-v1", "jaxmarl:MPE_simple_spread_v3"])
    parser.add_argument("--per-device", type=int, default=None, help="weak scaling: envs per device (CPU 16, GPU 1024)")
    parser.add_argument("--global-envs", type=int, default=None, help="strong scaling: envs in all (CPU 64, GPU 8192)")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--tag", default=None, help="results file suffix (default: none on CPU, the device kind else)")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--env", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--num-envs", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--process", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--port", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "ours":
        print(json.dumps(ours(args.env, args.devices, args.num_envs, args.iterations, args.process, args.processes,
                              args.port)))
        return
    if args.part == "baseline":
        print(json.dumps(baseline(args.num_envs, args.iterations)))
        return

    facts = device_facts()
    cpu = facts["platform"] == "cpu"
    counts = [n for n in ([1, 2, 4] if args.quick else [1, 2, 4, 8]) if cpu or n <= facts["count"]]
    per_device = args.per_device or (16 if cpu else 1024)
    global_envs = args.global_envs or (64 if cpu else 8192)
    iters = args.iterations or (5 if args.quick else 20)
    results: dict = {"device": facts, "emulated_devices": cpu, "cpus": os.cpu_count(), "steps_per_env": STEPS,
                     "iterations": iters, "envs_per_device_weak": per_device, "global_envs_strong": global_envs, "runs": []}

    def record(kind: str, env: str, devices: int, envs: int, processes: int = 1) -> dict:
        part = ["--part", "ours", "--env", env, "--devices", str(devices), "--num-envs", str(envs),
                "--iterations", str(iters)]
        r = {"kind": kind, "env": env, **run_part(part, devices, processes)}
        results["runs"].append(r)
        print(f"{kind:>7} {env:>30} devices {devices} x{processes} proc  envs {envs:>6}  "
              f"{r['env_steps_per_s']:>12,.0f} env steps/s  compile {r['compile_s']:.1f} s", flush=True)
        return r

    for env in args.envs:
        for n in counts:
            record("weak", env, n, per_device * n)
        for n in counts:
            record("strong", env, n, global_envs)
        if cpu and env.startswith("gymnax:"):
            record("2 procs", env, 4, per_device * 4, processes=2)
    if "gymnax:CartPole-v1" in args.envs:
        for kind, envs in (("weak", per_device), ("strong", global_envs)):
            b = run_part(["--part", "baseline", "--num-envs", str(envs), "--iterations", str(iters)], 1)
            results["runs"].append({"kind": f"baseline ({kind}, 1 device)", "env": "gymnax:CartPole-v1", **b})
            print(f"PureJaxRL baseline, 1 device, {envs} envs: {b['env_steps_per_s']:,.0f} env steps/s", flush=True)

    print(f"\n{'env':>30} | {'kind':>7} | {'devices':>7} | {'envs':>6} | {'env steps/s':>12} | {'vs 1 device':>11} | "
          f"{'vs PureJaxRL':>12}")
    for r in results["runs"]:
        if r["kind"].startswith("baseline"):
            continue
        same = "weak" if r["kind"] == "2 procs" else r["kind"]
        one = next(x for x in results["runs"] if x["env"] == r["env"] and x["kind"] == same and x["devices"] == 1)
        base = next((x for x in results["runs"] if x["kind"] == f"baseline ({same}, 1 device)" and x["env"] == r["env"]), None)
        r["ratio_to_1_device"] = r["env_steps_per_s"] / one["env_steps_per_s"]
        if r["kind"] == "2 procs":  # against the same devices and envs in one process
            alone = next(x for x in results["runs"] if x["env"] == r["env"] and x["kind"] == "weak"
                         and x["devices"] == r["devices"])
            r["ratio_to_1_process"] = r["env_steps_per_s"] / alone["env_steps_per_s"]
        # the hand-written baseline on one device with this run's global envs (weak: only the 1-device row compares)
        if base is not None and base["envs"] == r["envs"]:
            r["ratio_to_purejaxrl_1_device"] = r["env_steps_per_s"] / base["env_steps_per_s"]
        label = r["kind"] if r["kind"] != "2 procs" else "2 procs"
        print(f"{r['env']:>30} | {label:>7} | {r['devices']:>7} | {r['envs']:>6} | {r['env_steps_per_s']:>12,.0f} | "
              f"{r['ratio_to_1_device']:>11.2f} | {r.get('ratio_to_purejaxrl_1_device', float('nan')):>12.2f}"
              + (f"  ({r['ratio_to_1_process']:.2f} x the same devices in one process)" if "ratio_to_1_process" in r else ""))
    if cpu:
        print("CPU: the devices are emulated and share this machine's cores; the ratios show sharding overhead, "
              "not speed-up.")
    from common import write_results

    suffix = "" if cpu else "_" + facts["kind"].lower().replace(" ", "_").replace("nvidia_", "")
    suffix = f"_{args.tag}" if args.tag else suffix
    print(f"wrote {write_results('scaling' + suffix, results)}")


if __name__ == "__main__":
    main()
