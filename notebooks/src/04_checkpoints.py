# %% [markdown]
# # 04 · Checkpoints
# `save_to_path` writes the params through orbax-checkpoint plus a `metadata.json` (module class,
# spaces, model config, inference_only, library version, every leaf's shape and dtype) into a
# temporary directory that is then renamed, so a crash never leaves half a checkpoint.

# %%
import json
import tempfile
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np

from jaxrl_modules import Columns, DefaultModelConfig, RLModule
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig

env = gym.make("CartPole-v1")
module = DefaultPPORLModule(observation_space=env.observation_space, action_space=env.action_space,
                            model_config=DefaultModelConfig(fcnet_hiddens=[32, 32]))
params = module.init(jax.random.key(0))
root = Path(tempfile.mkdtemp())
path = module.save_to_path(root / "ppo_module", params)
meta = json.loads((Path(path) / "metadata.json").read_text())
sorted(p.name for p in Path(path).iterdir()), meta["module_class"], list(meta["params"])[:3]

# %% [markdown]
# `RLModule.from_checkpoint` rebuilds the module (class, spaces, config) and its params with no user
# code; `restore_from_path` loads params into a module you already have.

# %%
restored_module, restored_params = RLModule.from_checkpoint(path)
same = jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, restored_params, params))
type(restored_module).__name__, restored_module.model_config.fcnet_hiddens, same

# %% [markdown]
# Restores are strict: a module whose config does not match the checkpoint raises a `ValueError`
# naming the first differing leaf and both shapes, instead of returning a partly filled tree.

# %%
bigger = DefaultPPORLModule(observation_space=env.observation_space, action_space=env.action_space,
                            model_config=DefaultModelConfig(fcnet_hiddens=[256, 256]))
try:
    bigger.restore_from_path(path)
except ValueError as err:
    print(err)

# %% [markdown]
# ## Loading a module checkpoint into a running algorithm
# As in RLlib, `algo.restore_from_path(module_ckpt, component="learner_group/learner/rl_module/default_policy")`
# replaces that module's weights inside an algorithm (its optimizer keeps running).

# %%
config = (PPOConfig().environment("CartPole-v1")
          .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[32, 32]))
          .training(train_batch_size_per_learner=256, minibatch_size=128, num_epochs=2))
algo = config.build()
algo.restore_from_path(path, component="learner_group/learner/rl_module/default_policy")
loaded = jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, algo.get_params(), params))
result = algo.train()
loaded, result["num_env_steps_sampled_lifetime"]

# %% [markdown]
# A whole algorithm checkpoint (params, optimizer state, RNG, counters) also holds a module
# checkpoint per ModuleID under the same component path:

# %%
algo_path = Path(algo.save_to_path(root / "algo"))
module_dir = algo_path / "learner_group/learner/rl_module/default_policy"
m, p = RLModule.from_checkpoint(module_dir)
m.forward_inference(p, {Columns.OBS: np.zeros((1, 4), np.float32)})[Columns.ACTIONS]
