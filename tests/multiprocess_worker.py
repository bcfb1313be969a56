"""Run by tests/test_multi_process.py: one process of a `jax.distributed` run on 127.0.0.1 (or the whole
run in one process when num_processes is 1), devices emulated with XLA_FLAGS by the caller.

    python multiprocess_worker.py MODE PROCESS_ID NUM_PROCESSES PORT OUT_DIR

MODE "jit": all-in-jit PPO (gymnax CartPole) over every device: 3 iterations, a checkpoint (process 0
writes it), a restore on every process, 1 more iteration. MODE "host": PPO's gymnasium host loop, each
process stepping its own envs and feeding its own devices, 2 iterations. Each process writes its final
params (`params_<process>.npz`) and a JSON of its results (`result_<process>.json`) into OUT_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

mode, pid, nproc, port, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])

from jaxrl_modules import distributed  # noqa: E402

if nproc > 1:
    distributed.initialize(f"127.0.0.1:{port}", nproc, pid)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxrl_modules.algorithms.ppo import PPOConfig  # noqa: E402

TRAINING = dict(train_batch_size_per_learner=64, minibatch_size=16, num_epochs=2, lr=1e-3)

if mode == "one_learner":  # num_learners left at its default in a run of several processes: refused
    try:
        PPOConfig().environment("gymnax:CartPole-v1").build()
        message = None
    except ValueError as err:
        message = str(err)
    (out / f"result_{pid}.json").write_text(json.dumps({"error": message}))
    distributed.barrier("worker done")
    sys.exit(0)
if mode == "nan_on_one":  # process 1's envs return a NaN observation after 40 steps: every process stops
    import gymnasium as gym

    from jaxrl_modules.algorithms.nonfinite import NonFiniteError
    from jaxrl_modules.envs.registry import register_env

    class NanOnProcess1(gym.Wrapper):
        def __init__(self, config=None):
            super().__init__(gym.make("CartPole-v1"))
            self.steps = 0

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.steps += 1
            if jax.process_index() == 1 and self.steps > 40:
                obs = obs * np.nan
            return obs, reward, terminated, truncated, info

    register_env("nan_on_process_1", NanOnProcess1)
    algo = (PPOConfig().environment("nan_on_process_1").env_runners(num_envs_per_env_runner=2)
            .rl_module(model_config={"fcnet_hiddens": [16]}).training(**TRAINING).learners(num_learners="auto")).build()
    errors = []
    for _ in range(3):
        try:
            algo.train()
        except NonFiniteError as err:
            errors.append(str(err))
            break
    (out / f"result_{pid}.json").write_text(json.dumps({"errors": errors, "iteration": algo.iteration}))
    algo.stop()
    distributed.barrier("worker done")
    sys.exit(0)
if mode == "jit":
    config = (PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=8, rollout_fragment_length=32)
              .rl_module(model_config={"fcnet_hiddens": [16]}).training(**TRAINING).learners(num_learners="auto"))
    algo = config.build()
    results = [algo.train() for _ in range(3)]
    checkpoint = algo.save_to_path(out / "checkpoint")
    restored = config.build()
    restored.restore_from_path(checkpoint)
    results.append(restored.train())
    algo = restored
else:
    config = (PPOConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=2)
              .rl_module(model_config={"fcnet_hiddens": [16]}).training(**TRAINING).learners(num_learners="auto"))
    algo = config.build()
    results = [algo.train() for _ in range(2)]
    checkpoint = algo.save_to_path(out / "checkpoint")

params = distributed.host_values(algo.get_params())
np.savez(out / f"params_{pid}.npz", *[np.asarray(x) for x in jax.tree_util.tree_leaves(params)])
summary = {"devices": jax.device_count(), "processes": jax.process_count(), "checkpoint": checkpoint,
           "returns": [r["env_runners"]["episode_return_mean"] for r in results],
           "episodes": [r["env_runners"]["num_episodes"] for r in results],
           "env_steps": [r["num_env_steps_sampled_lifetime"] for r in results],
           "losses": [r["learners"]["default_policy"]["total_loss"] for r in results]}
(out / f"result_{pid}.json").write_text(json.dumps(summary))
algo.stop()
distributed.barrier("worker done")
