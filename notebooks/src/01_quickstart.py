# %% [markdown]
# # 01 · Quickstart: default RLModules in JAX
# An RLlib `RLModule` is the neural network of an RL algorithm. In `jaxrl_modules` a module is a
# *description* (a `flax.linen.Module` built from gymnasium spaces and a model config); its weights
# are an explicit params pytree, and each of the three forward passes is a pure, jitted function
# of `(params, batch, rng)`.

# %%
import time

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules import Columns, DefaultModelConfig, RLModuleSpec
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule

env = gym.make("CartPole-v1")
module = DefaultPPORLModule(observation_space=env.observation_space, action_space=env.action_space,
                            model_config=DefaultModelConfig(fcnet_hiddens=[64, 64]))
params = module.init(jax.random.key(0))
jax.tree_util.tree_map(jnp.shape, params)

# %% [markdown]
# `DefaultModelConfig` keeps RLlib's field names and defaults. The same module can be built through
# an `RLModuleSpec`, as RLlib's algorithm configs do:

# %%
spec = RLModuleSpec(module_class=DefaultPPORLModule, observation_space=env.observation_space,
                    action_space=env.action_space, model_config={"fcnet_hiddens": [32], "vf_share_layers": False})
spec_module = spec.build()
sorted(spec_module.init(jax.random.key(1)))

# %% [markdown]
# ## The three forward passes
# `forward_exploration` samples actions (and their log-probs) from the action distribution;
# `forward_inference` takes the deterministic action (argmax here); `forward_train` returns what the
# loss needs, differentiable in `params`. Batches always carry a leading batch axis.

# %%
obs, _ = env.reset(seed=0)
batch = {Columns.OBS: np.stack([obs, obs, obs])}
explore = module.forward_exploration(params, batch, jax.random.key(2))
infer = module.forward_inference(params, batch)
train = module.forward_train(params, batch)
{name: {k: v.shape for k, v in out.items()} for name, out in
 [("exploration", explore), ("inference", infer), ("train", train)]}

# %% [markdown]
# The PPO module implements RLlib's `ValueFunctionAPI`; `compute_values` reuses the embeddings of
# `forward_train` so the encoder runs once:

# %%
module.compute_values(params, batch, embeddings=train[Columns.EMBEDDINGS])

# %% [markdown]
# ## Inside your own `jit`, `vmap` and `grad`
# Because every forward pass is a pure function of arrays, it composes with JAX transformations.

# %%
@jax.jit
def act(params, obs, rng):
    return module.forward_exploration(params, {Columns.OBS: obs}, rng)[Columns.ACTIONS]


population = jax.vmap(module.init)(jax.random.split(jax.random.key(3), 4))  # 4 independent policies
logits = jax.vmap(lambda p: module.forward_inference(p, batch)[Columns.ACTION_DIST_INPUTS])(population)


def loss(params):
    out = module.forward_train(params, batch)
    dist = module.get_train_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    return -dist.logp(jnp.zeros(3, jnp.int32)).mean()


grads = jax.grad(loss)(params)
act(params, batch[Columns.OBS], jax.random.key(4)), logits.shape, float(jnp.abs(grads["pi"]["out"]["kernel"]).sum())

# %% [markdown]
# ## Acting in an env loop
# The guide's sampling loop: the inference distribution class, made deterministic, picks actions.

# %%
action_dist_class = module.get_inference_action_dist_cls()
obs, _ = env.reset(seed=1)
episode_return, done = 0.0, False
while not done:
    logits = module.forward_inference(params, {Columns.OBS: obs[None]})[Columns.ACTION_DIST_INPUTS]
    action = action_dist_class.from_logits(logits).to_deterministic().sample(seed=jax.random.key(0))
    obs, reward, terminated, truncated, _ = env.step(int(action[0]))
    episode_return += reward
    done = terminated or truncated
episode_return  # an untrained policy

# %% [markdown]
# ## CNN and LSTM default models
# Image observations `[H, W, C]` get a CNN encoder: RLlib's default filters for the input size, or,
# as in the guide, a DreamerV3-style stack given explicitly. `use_lstm=True` wraps the encoder in an
# LSTM whose state is passed in `state_in` and returned in `state_out`.

# %%
image_module = DefaultPPORLModule(
    observation_space=gym.spaces.Box(-1, 1, (64, 64, 3), np.float32), action_space=gym.spaces.Discrete(4),
    model_config=DefaultModelConfig(
        conv_filters=[[16, 4, 2], [32, 4, 2], [64, 4, 2], [128, 4, 2]],  # [num_filters, kernel, stride]
        conv_activation="silu",
        head_fcnet_hiddens=[256],  # after flattening the last CNN layer
    ))
image_params = image_module.init(jax.random.key(5))
print({k: v["kernel"].shape for k, v in image_params["encoder"]["cnn"].items()})

lstm_module = DefaultPPORLModule(observation_space=env.observation_space, action_space=env.action_space,
                                 model_config=DefaultModelConfig(fcnet_hiddens=[32], use_lstm=True, lstm_cell_size=16))
lstm_params = lstm_module.init(jax.random.key(6))
state = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (3,) + x.shape), lstm_module.get_initial_state())
seq = {Columns.OBS: np.zeros((3, 5, 4), np.float32), Columns.STATE_IN: state}  # [B, T, ...]
out = lstm_module.forward_exploration(lstm_params, seq, jax.random.key(7))
out[Columns.ACTIONS].shape, jax.tree_util.tree_map(jnp.shape, out[Columns.STATE_OUT])

# %% [markdown]
# ## Compiled once
# Each forward pass is compiled once per input shape and module instance; calling again with new
# values of the same shape reuses the compiled function.

# %%
new_shape = {Columns.OBS: np.zeros((7, 4), np.float32)}  # a batch size not seen before
times = []
for i in range(3):
    t = time.perf_counter()
    jax.block_until_ready(module.forward_exploration(params, new_shape, jax.random.key(i)))
    times.append(round((time.perf_counter() - t) * 1e6))
times  # µs: the first call compiled, the others did not
