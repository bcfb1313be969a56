"""Forward-pass cost of our modules against a hand-written flax.linen + distrax baseline.

Same architecture and the same weights, measured side by side in this process:
  * single module: default PPO module ([256, 256] tanh, CartPole-v1 spaces),
    forward_exploration (sample + logp) and forward_inference at B = 1, 32, 1024, 8192,
    calls issued back to back (pipelined: the per-call Python cost overlaps the compute);
  * the same module acting as a host loop does, one call waited on before the next
    (awaited latency, B = 1 and 32): what the per-call Python work costs;
  * N identical [64, 64] modules at B = 32 each, through `multi.forward_exploration`
    ({mid: batch}) and through the stacked path, against one hand-written vmapped call.
Run: python bench/forward.py [--quick]. Writes bench/results/forward.json.
"""

from __future__ import annotations

import argparse
import sys

import distrax
import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from common import awaited_medians, environment, interleaved_medians, write_results  # noqa: E402

from jaxrl_modules import Columns, DefaultModelConfig, MultiRLModuleSpec, RLModuleSpec  # noqa: E402
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule  # noqa: E402

OBS_SPACE = gym.make("CartPole-v1").observation_space
ACT_SPACE = gym.spaces.Discrete(2)


class BaselineActor(nn.Module):
    """The hand-written policy: MLP with tanh on every hidden layer, linear logits."""

    hiddens: tuple

    @nn.compact
    def __call__(self, x):
        for h in self.hiddens:
            x = jnp.tanh(nn.Dense(h)(x))
        return nn.Dense(2)(x)


def baseline_params(ours: dict, n_hidden: int) -> dict:
    """Our PPO params mapped onto the baseline's names (identical weights)."""
    p = {f"Dense_{i}": ours["encoder"]["mlp"][f"dense_{i}"] for i in range(n_hidden)}
    p[f"Dense_{n_hidden}"] = ours["pi"]["out"]
    return p


def baseline_fns(hiddens: tuple):
    net = BaselineActor(hiddens)

    def explore(params, obs, rng):
        logits = net.apply({"params": params}, obs)
        dist = distrax.Categorical(logits=logits)
        actions = dist.sample(seed=rng)
        return {"actions": actions, "logp": dist.log_prob(actions), "logits": logits}

    def infer(params, obs):
        logits = net.apply({"params": params}, obs)
        return {"actions": jnp.argmax(logits, -1), "logits": logits}

    def explore_many(params, obs, rng):
        return jax.vmap(explore)(params, obs, jax.random.split(rng, obs.shape[0]))

    return jax.jit(explore), jax.jit(infer), jax.jit(explore_many)


def single_module(batch_sizes, reps):
    module = DefaultPPORLModule(observation_space=OBS_SPACE, action_space=ACT_SPACE, model_config=DefaultModelConfig())
    params = module.init(jax.random.key(0))
    bparams = baseline_params(params, 2)
    b_explore, b_infer, _ = baseline_fns((256, 256))
    rng = jax.random.key(1)
    rows = []
    for B in batch_sizes:
        obs = jnp.asarray(np.random.default_rng(B).normal(size=(B, 4)).astype(np.float32))
        batch = {Columns.OBS: obs}
        ours = module.forward_inference(params, batch)
        assert jnp.allclose(ours[Columns.ACTION_DIST_INPUTS], b_infer(bparams, obs)["logits"], atol=1e-5)
        inner = max(5, min(300, 20000 // B))
        t = interleaved_medians({
            "ours_explore": lambda: module.forward_exploration(params, batch, rng),
            "base_explore": lambda: b_explore(bparams, obs, rng),
            "ours_infer": lambda: module.forward_inference(params, batch),
            "base_infer": lambda: b_infer(bparams, obs),
        }, inner, reps)
        rows.append({"B": B, **{k: v * 1e6 for k, v in t.items()},
                     "ratio_explore": t["ours_explore"] / t["base_explore"],
                     "ratio_infer": t["ours_infer"] / t["base_infer"]})
    return rows


def awaited_latency(batch_sizes, reps, inner=200):
    """One call, block_until_ready, next call: µs of the lowest round median (and the median
    over rounds), ours against the hand-written baseline interleaved round by round."""
    module = DefaultPPORLModule(observation_space=OBS_SPACE, action_space=ACT_SPACE, model_config=DefaultModelConfig())
    params = module.init(jax.random.key(0))
    bparams = baseline_params(params, 2)
    b_explore, b_infer, _ = baseline_fns((256, 256))
    rng = jax.random.key(1)
    rows = []
    for B in batch_sizes:
        obs = jnp.asarray(np.random.default_rng(B).normal(size=(B, 4)).astype(np.float32))
        batch = {Columns.OBS: obs}
        t = awaited_medians({
            "ours_explore": lambda: module.forward_exploration(params, batch, rng),
            "base_explore": lambda: b_explore(bparams, obs, rng),
            "ours_infer": lambda: module.forward_inference(params, batch),
            "base_infer": lambda: b_infer(bparams, obs),
        }, inner, reps)
        row = {"B": B}
        for phase in ("explore", "infer"):
            ours, base = t[f"ours_{phase}"], t[f"base_{phase}"]
            row.update({f"ours_{phase}": ours["min"] * 1e6, f"base_{phase}": base["min"] * 1e6,
                        f"ours_{phase}_median": ours["median"] * 1e6, f"base_{phase}_median": base["median"] * 1e6,
                        f"ratio_{phase}": ours["min"] / base["min"], f"diff_{phase}_us": (ours["min"] - base["min"]) * 1e6})
            row[f"goal_{phase}"] = row[f"ratio_{phase}"] <= 1.1 or row[f"diff_{phase}_us"] <= 5.0
        rows.append(row)
    return rows


def multi_modules(ns, reps, B=32):
    spec = RLModuleSpec(DefaultPPORLModule, OBS_SPACE, ACT_SPACE, model_config=DefaultModelConfig(fcnet_hiddens=[64, 64]))
    _, _, b_many = baseline_fns((64, 64))
    rng = jax.random.key(2)
    rows = []
    for n in ns:
        mids = [f"p{i}" for i in range(n)]
        multi = MultiRLModuleSpec(rl_module_specs={m: spec for m in mids}).build()
        params = multi.init(jax.random.key(0))
        group = multi.stacked(mids)
        stacked = multi.stack_params(params, mids)
        bstacked = baseline_params(stacked, 2)
        obs = jnp.asarray(np.random.default_rng(n).normal(size=(n, B, 4)).astype(np.float32))
        dict_batch = {m: {Columns.OBS: obs[i]} for i, m in enumerate(mids)}
        out = group.forward_exploration(stacked, {Columns.OBS: obs}, rng)
        assert jnp.allclose(out[Columns.ACTION_DIST_INPUTS], b_many(bstacked, obs, rng)["logits"], atol=1e-5)
        t = interleaved_medians({
            "dict": lambda: multi.forward_exploration(params, dict_batch, rng),
            "stacked": lambda: group.forward_exploration(stacked, {Columns.OBS: obs}, rng),
            "base": lambda: b_many(bstacked, obs, rng),
        }, 50, reps)
        rows.append({"N": n, **{k: v * 1e6 for k, v in t.items()},
                     "stacked_per_module": t["stacked"] * 1e6 / n,
                     "ratio_stacked": t["stacked"] / t["base"], "ratio_dict": t["dict"] / t["base"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args()
    reps = 5 if args.quick else 15
    single = single_module([1, 32, 1024, 8192], reps)
    awaited = awaited_latency([1, 32], 15)  # cheap (about 2 s), so always the 15 rounds the goal is stated for
    multi = multi_modules([1, 8, 64], reps)
    print("\nSingle module, default PPO [256, 256], CartPole-v1 spaces (median µs per call)")
    print(f"{'B':>6} | {'explore ours':>12} {'baseline':>9} {'ratio':>6} | {'infer ours':>10} {'baseline':>9} {'ratio':>6}")
    for r in single:
        print(f"{r['B']:>6} | {r['ours_explore']:>12.1f} {r['base_explore']:>9.1f} {r['ratio_explore']:>6.2f} | "
              f"{r['ours_infer']:>10.1f} {r['base_infer']:>9.1f} {r['ratio_infer']:>6.2f}")
    print("\nAwaited acting latency (one call, block_until_ready, next call): µs, lowest of the rounds' medians")
    print(f"{'B':>6} | {'explore ours':>12} {'baseline':>9} {'ratio':>6} {'diff':>6} | "
          f"{'infer ours':>10} {'baseline':>9} {'ratio':>6} {'diff':>6}")
    for r in awaited:
        print(f"{r['B']:>6} | {r['ours_explore']:>12.1f} {r['base_explore']:>9.1f} {r['ratio_explore']:>6.2f} "
              f"{r['diff_explore_us']:>+6.1f} | {r['ours_infer']:>10.1f} {r['base_infer']:>9.1f} {r['ratio_infer']:>6.2f} "
              f"{r['diff_infer_us']:>+6.1f}")
    print("\nN identical [64, 64] modules, B = 32 each, forward_exploration (median µs per call)")
    print(f"{'N':>4} | {'stacked':>8} {'dict':>8} {'baseline':>9} | {'stacked/base':>12} {'dict/base':>9} | "
          f"{'stacked per module':>18}")
    for r in multi:
        print(f"{r['N']:>4} | {r['stacked']:>8.1f} {r['dict']:>8.1f} {r['base']:>9.1f} | {r['ratio_stacked']:>12.2f} "
              f"{r['ratio_dict']:>9.2f} | {r['stacked_per_module']:>18.1f}")
    path = write_results("forward", {"environment": environment(), "single": single, "awaited": awaited, "multi": multi,
                                        "reps": reps})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
