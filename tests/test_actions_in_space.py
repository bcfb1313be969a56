"""Actions exactly as the action space declares: Discrete/MultiDiscrete `start` (also nested in
Tuple/Dict) in the distributions, PPO, DQN and BC; Box actions reach the env as
`environment(normalize_actions=, clip_actions=)` say, in the host loops and inside `jax.jit`."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrl_modules import Columns, RLModuleSpec
from jaxrl_modules.algorithms.action_transform import clip_action, make_env_action_fn, unsquash_action
from jaxrl_modules.algorithms.bc import BCConfig
from jaxrl_modules.algorithms.bc.learner import BCLearner
from jaxrl_modules.algorithms.dqn import DefaultDQNRLModule, DQNConfig
from jaxrl_modules.algorithms.dqn.learner import DQNLearner
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig
from jaxrl_modules.algorithms.sac import DefaultSACRLModule, SACConfig
from jaxrl_modules.distributions import default_dist_cls

KEY = jax.random.key(0)
DISCRETE = gym.spaces.Discrete(3, start=1)
MULTI = gym.spaces.MultiDiscrete([3, 2], start=[-1, 5])
BOX = gym.spaces.Box(np.array([0.0, -3.0], np.float32), np.array([10.0, -1.0], np.float32), (2,), np.float32)
OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)


def rows(action, i):
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[i], action)


def assert_all_in(space, actions, n):
    for i in range(n):
        a = rows(actions, i)
        assert space.contains(a), f"{a!r} not in {space}"


def log_softmax(x):
    return np.asarray(jax.nn.log_softmax(jnp.asarray(x), axis=-1))


# ----------------------------------------------------------------- distributions
@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 4), start=st.integers(-4, 4), seed=st.integers(0, 2**16))
def test_categorical_with_start_acts_in_space_with_closed_form_logp(n, start, seed):
    space = gym.spaces.Discrete(n, start=start)
    logits = np.random.default_rng(seed).normal(size=(16, n)).astype(np.float32)
    d = default_dist_cls(space).from_logits(jnp.asarray(logits))
    sample, greedy = np.asarray(d.sample(seed=jax.random.key(seed))), np.asarray(d.to_deterministic().sample(seed=KEY))
    assert all(space.contains(a) for a in sample.tolist()) and all(space.contains(a) for a in greedy.tolist())
    assert np.array_equal(greedy, logits.argmax(-1) + start)
    assert np.allclose(d.logp(jnp.asarray(sample)), log_softmax(logits)[np.arange(16), sample - start], atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(start=st.lists(st.integers(-5, 5), min_size=2, max_size=2), seed=st.integers(0, 2**16))
def test_multi_categorical_with_start(start, seed):
    space = gym.spaces.MultiDiscrete([3, 2], start=start)
    logits = np.random.default_rng(seed).normal(size=(16, 5)).astype(np.float32)
    d = default_dist_cls(space).from_logits(jnp.asarray(logits))
    sample = np.asarray(d.sample(seed=jax.random.key(seed)))
    greedy = np.asarray(d.to_deterministic().sample(seed=KEY))
    assert sample.dtype == np.int32 and sample.shape == (16, 2)
    assert_all_in(space, sample, 16)
    assert_all_in(space, greedy, 16)
    assert np.array_equal(greedy, np.stack([logits[:, :3].argmax(-1), logits[:, 3:].argmax(-1)], -1) + np.array(start))
    idx = sample - np.array(start)
    expected = log_softmax(logits[:, :3])[np.arange(16), idx[:, 0]] + log_softmax(logits[:, 3:])[np.arange(16), idx[:, 1]]
    assert np.allclose(d.logp(jnp.asarray(sample)), expected, atol=1e-5)


@pytest.mark.parametrize("space", [
    gym.spaces.Tuple((DISCRETE, MULTI, BOX)),
    gym.spaces.Dict({"d": DISCRETE, "m": MULTI, "nested": gym.spaces.Tuple((gym.spaces.Discrete(2, start=-7),))}),
], ids=["tuple", "dict"])
def test_nested_spaces_with_start(space):
    cls = default_dist_cls(space)
    logits = np.random.default_rng(0).normal(size=(32, cls.required_input_dim(space))).astype(np.float32)
    d = cls.from_logits(jnp.asarray(logits))
    sample = jax.device_get(d.sample(seed=KEY))
    greedy = jax.device_get(d.to_deterministic().sample(seed=KEY))
    bounded = space if not isinstance(space, gym.spaces.Tuple) else gym.spaces.Tuple(space.spaces[:2])
    cut = (lambda a: a[:2]) if isinstance(space, gym.spaces.Tuple) else (lambda a: a)  # the Box part is unbounded
    assert_all_in(bounded, cut(sample), 32)
    assert_all_in(bounded, cut(greedy), 32)
    # logp: the sum of the closed forms of the discrete parts (plus the Gaussian's own logp)
    if isinstance(space, gym.spaces.Tuple):
        disc, multi = sample[0], sample[1]
        lp_rest = np.asarray(d.children[2].logp(jnp.asarray(sample[2])))
        d_logits, m_logits = logits[:, :3], logits[:, 3:8]
    else:
        disc, multi = sample["d"], sample["m"]
        lp_rest = log_softmax(logits[:, 8:10])[np.arange(32), sample["nested"][0] + 7]
        d_logits, m_logits = logits[:, :3], logits[:, 3:8]
    m_idx = multi - np.array([-1, 5])
    expected = (log_softmax(d_logits)[np.arange(32), disc - 1] + log_softmax(m_logits[:, :3])[np.arange(32), m_idx[:, 0]]
                + log_softmax(m_logits[:, 3:])[np.arange(32), m_idx[:, 1]] + lp_rest)
    assert np.allclose(d.logp(sample), expected, atol=1e-4)


def test_multi_distribution_logp_takes_a_flat_array_as_rllib():
    space = gym.spaces.Dict({"a": DISCRETE, "b": BOX, "c": MULTI})
    d = default_dist_cls(space).from_logits(jnp.asarray(np.random.default_rng(1).normal(size=(8, 12)), jnp.float32))
    s = d.sample(seed=KEY)
    flat = jnp.concatenate([s["a"][:, None].astype(jnp.float32), s["b"], s["c"].astype(jnp.float32)], -1)
    assert flat.shape == (8, 5)
    assert jnp.allclose(d.logp(flat), d.logp(s)) and jnp.allclose(d.logp([s["a"], s["b"], s["c"]]), d.logp(s))


def test_space_zeros_dummy_actions_are_in_the_space():
    from jaxrl_modules.spaces import space_zeros

    assert np.asarray(space_zeros(DISCRETE, (4,))).tolist() == [1, 1, 1, 1]
    assert np.asarray(space_zeros(MULTI, (2,))).tolist() == [[-1, 5], [-1, 5]]


# ----------------------------------------------------------------- modules and learners
@pytest.mark.parametrize("space", [DISCRETE, MULTI, gym.spaces.Dict({"d": DISCRETE, "m": MULTI})], ids=str)
def test_ppo_module_actions_in_space(space):
    m = RLModuleSpec(DefaultPPORLModule, OBS, space, model_config={"fcnet_hiddens": [8]}).build()
    p = m.init(KEY)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(64, 3)).astype(np.float32)
    explore = m.forward_exploration(p, {Columns.OBS: obs}, KEY)
    assert_all_in(space, jax.device_get(explore[Columns.ACTIONS]), 64)
    assert_all_in(space, jax.device_get(m.forward_inference(p, {Columns.OBS: obs})[Columns.ACTIONS]), 64)
    assert np.all(np.isfinite(explore[Columns.ACTION_LOGP]))
    # Non-finite observations (flagged by the training loops) still never give out-of-space actions.
    obs[::3] = np.nan
    assert_all_in(space, jax.device_get(m.forward_exploration(p, {Columns.OBS: obs}, KEY)[Columns.ACTIONS]), 64)
    assert_all_in(space, jax.device_get(m.forward_inference(p, {Columns.OBS: obs})[Columns.ACTIONS]), 64)


def test_dqn_module_and_learner_use_start():
    m = DefaultDQNRLModule(observation_space=OBS, action_space=gym.spaces.Discrete(4, start=-2),
                           model_config={"fcnet_hiddens": [8], "epsilon": [[0, 1.0], [10, 0.0]]})
    p = m.init(KEY)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(256, 3)).astype(np.float32)
    q = np.asarray(m.compute_q_values(p, {Columns.OBS: obs})["qf_preds"])
    greedy = np.asarray(m.forward_inference(p, {Columns.OBS: obs})[Columns.ACTIONS])
    assert np.array_equal(greedy, q.argmax(-1) - 2)
    random = np.asarray(m.forward_exploration(p, {Columns.OBS: obs}, KEY, t=0)[Columns.ACTIONS])
    assert set(random.tolist()) == {-2, -1, 0, 1}
    config = DQNConfig().training(double_q=False)
    learner = DQNLearner(m, config)
    actions = np.random.default_rng(1).integers(-2, 2, size=256).astype(np.int32)
    batch = {Columns.OBS: obs, Columns.NEXT_OBS: obs, Columns.ACTIONS: actions, Columns.REWARDS: np.zeros(256, np.float32),
             Columns.TERMINATEDS: np.ones(256, bool)}
    _, metrics = learner.loss(p, m.make_target_params(p), batch)
    assert np.isclose(float(metrics["qf_mean"]), q[np.arange(256), actions + 2].mean(), atol=1e-5)


def test_bc_logp_of_dataset_actions_with_start():
    from jaxrl_modules.algorithms.bc import DefaultBCRLModule

    m = DefaultBCRLModule(observation_space=OBS, action_space=DISCRETE, model_config={"fcnet_hiddens": [8]})
    p = m.init(KEY)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(32, 3)).astype(np.float32)
    actions = np.random.default_rng(1).integers(1, 4, size=32)
    loss, _ = BCLearner(m, BCConfig()).loss(p, {Columns.OBS: obs, Columns.ACTIONS: actions})
    logits = np.asarray(m.forward_train(p, {Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS])
    assert np.isclose(float(loss), -log_softmax(logits)[np.arange(32), actions - 1].mean(), atol=1e-5)


# ----------------------------------------------------------------- what reaches the env
class RecordingEnv(gym.Env):
    """Asserts every action it receives is in its action space and records it."""

    def __init__(self, action_space, log):
        self.observation_space, self.action_space, self.log = OBS, action_space, log
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample().astype(np.float32) * 0 + 0.1, {}

    def step(self, action):
        assert self.action_space.contains(action), f"{action!r} sent to an env with action space {self.action_space}"
        self.log.append(action)
        self._t += 1
        return np.full(3, 0.1 * (self._t % 5), np.float32), 1.0, False, self._t >= 10, {}


def recording(space):
    log = []
    return (lambda cfg: RecordingEnv(space, log)), log


@pytest.mark.slow
@pytest.mark.parametrize("space", [DISCRETE, MULTI], ids=str)
def test_ppo_host_loop_sends_only_in_space_actions(space):
    creator, log = recording(space)
    algo = (PPOConfig().environment(creator).env_runners(num_envs_per_env_runner=2)
            .rl_module(model_config={"fcnet_hiddens": [8]})
            .training(train_batch_size_per_learner=32, minibatch_size=16, num_epochs=1)).build()
    algo.train()
    algo.train()
    assert len(log) >= 64
    algo.evaluate(episodes=1)


@pytest.mark.slow
def test_dqn_host_loop_sends_only_in_space_actions():
    creator, log = recording(gym.spaces.Discrete(3, start=7))
    algo = (DQNConfig().environment(creator).env_runners(num_envs_per_env_runner=4).rl_module(model_config={"fcnet_hiddens": [8]})
            .training(train_batch_size=8, num_steps_sampled_before_learning_starts=16,
                      epsilon=[(0, 1.0), (400, 0.0)], replay_buffer_config={"capacity": 100})).build()
    algo.train()  # ~1000 env steps: random then greedy actions, one update per step
    assert len(log) >= 1000 and {7, 8, 9} == set(int(a) for a in log)


@pytest.mark.slow
@pytest.mark.parametrize("normalize, clip", [(True, False), (False, True)])
def test_box_actions_reach_the_env_inside_bounds_host_loop(normalize, clip):
    creator, log = recording(BOX)
    algo = (PPOConfig().environment(creator, normalize_actions=normalize, clip_actions=clip)
            .env_runners(num_envs_per_env_runner=2).rl_module(model_config={"fcnet_hiddens": [8]})
            .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)).build()
    traj, _, _ = algo.runner.sample(algo.act, algo._params(), KEY, 20)
    sent = np.stack(log[-40:]).astype(np.float32)
    assert np.all(sent >= BOX.low) and np.all(sent <= BOX.high)
    # the batch keeps the module's actions; the env got them transformed
    module_actions = traj[Columns.ACTIONS].reshape(-1, 2)
    expected = unsquash_action(module_actions, BOX) if normalize else clip_action(module_actions, BOX)
    assert np.allclose(sent, expected, atol=1e-5)
    assert not np.all((module_actions >= BOX.low) & (module_actions <= BOX.high))  # raw Gaussian actions
    algo.train()
    log.clear()
    algo.evaluate(episodes=1)
    assert len(log) == 10 and all(BOX.contains(a) for a in log)


@pytest.mark.slow
@pytest.mark.parametrize("normalize, clip", [(True, False), (False, True)])
def test_sac_host_loop_box_actions(normalize, clip):
    creator, log = recording(BOX)
    algo = (SACConfig().environment(creator, normalize_actions=normalize, clip_actions=clip)
            .env_runners(num_envs_per_env_runner=4).rl_module(model_config={"fcnet_hiddens": [8]})
            .training(train_batch_size_per_learner=8, num_steps_sampled_before_learning_starts=2000)).build()
    algo.train()
    sent = np.stack(log).astype(np.float32)
    assert np.all(sent >= BOX.low) and np.all(sent <= BOX.high)
    if normalize:  # SAC's [-1, 1] actions cover the whole Box once unsquashed
        assert sent[:, 0].max() > 5.0 and sent[:, 1].min() < -2.0
    else:  # [-1, 1] clipped into [0, 10] x [-3, -1]
        assert sent[:, 0].max() <= 1.0 and np.all(sent[:, 1] == -1.0)


def test_action_transform_is_pure_and_nested():
    space = gym.spaces.Dict({"box": BOX, "d": DISCRETE, "free": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})
    a = {"box": np.array([[-1.0, 1.0], [3.0, 0.0]], np.float32), "d": np.array([1, 3]),
         "free": np.array([[5.0], [-5.0]], np.float32)}
    out = unsquash_action(a, space)
    assert np.allclose(out["box"], [[0.0, -1.0], [10.0, -2.0]]) and out["box"].dtype == np.float32
    assert out["d"] is a["d"] and out["free"] is a["free"]
    clipped = clip_action(a, space)
    assert np.allclose(clipped["box"], [[0.0, -1.0], [3.0, -1.0]])
    jitted = jax.jit(make_env_action_fn(space, True, False))({k: jnp.asarray(v) for k, v in a.items()})
    assert np.allclose(jitted["box"], out["box"])
    assert make_env_action_fn(space, False, False)(a) is a


def test_sac_with_unbounded_box_is_a_build_error():
    from conftest import raises_naming

    spec = RLModuleSpec(DefaultSACRLModule, OBS, gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    raises_naming(ValueError, spec.build, "DefaultSACRLModule", "bounded", "inf")
    half = gym.spaces.Box(np.array([-1.0, -np.inf], np.float32), np.array([1.0, 1.0], np.float32))
    raises_naming(ValueError, lambda: SACConfig().environment(lambda cfg: RecordingEnv(half, [])).build(),
                  "bounded", "dimension(s) [1]")


# ----------------------------------------------------------------- inside jax.jit (gymnax)
class RecordingGymnax:
    """A gymnax env wrapper that records the actions `step` receives (host callback)."""

    def __init__(self, env, log):
        self._env, self.log = env, log

    def __getattr__(self, name):
        return getattr(self._env, name)

    def step(self, key, state, action, params):
        jax.debug.callback(lambda a: self.log.append(np.asarray(a)), action)
        return self._env.step(key, state, action, params)


@pytest.mark.parametrize("normalize, clip", [(True, False), (False, True)])
def test_box_actions_reach_gymnax_pendulum_inside_bounds(monkeypatch, normalize, clip):
    import jaxrl_modules.algorithms.jit_loop as jit_loop
    import jaxrl_modules.algorithms.ppo.jax_train as jax_train
    from jaxrl_modules.envs.registry import make_gymnax

    log = []

    def make(name, cfg):
        env, params = make_gymnax(name, cfg)
        return RecordingGymnax(env, log), params

    monkeypatch.setattr(jit_loop, "make_gymnax", make)
    config = (PPOConfig().environment("gymnax:Pendulum-v1", normalize_actions=normalize, clip_actions=clip)
              .env_runners(num_envs_per_env_runner=2, rollout_fragment_length=16)
              .rl_module(model_config={"fcnet_hiddens": [8], "vf_share_layers": True})
              .training(train_batch_size_per_learner=32, minibatch_size=32, num_epochs=1))
    ppo = jax_train.JaxPPO(config)
    state = ppo.init(KEY)
    runner, traj, _ = jax.jit(lambda s: ppo.runner.rollout(ppo.act_fn, s.learner.params, s.runner, KEY, 16))(state)
    jax.effects_barrier()
    sent = np.concatenate([np.reshape(a, (-1,)) for a in log])
    assert sent.size == 32 and np.all(np.abs(sent) <= 2.0)
    module_actions = np.asarray(traj[Columns.ACTIONS]).reshape(-1)
    expected = np.clip(2.0 * module_actions, -2, 2) if normalize else np.clip(module_actions, -2, 2)
    assert np.allclose(np.sort(sent), np.sort(expected), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("normalize, clip", [(True, False), (False, True)])
def test_sac_all_in_jit_box_actions_reach_gymnax_pendulum_inside_bounds(monkeypatch, normalize, clip):
    import jaxrl_modules.algorithms.jit_loop as jit_loop
    from jaxrl_modules.envs.registry import make_gymnax

    log = []

    def make(name, cfg):
        env, params = make_gymnax(name, cfg)
        return RecordingGymnax(env, log), params

    monkeypatch.setattr(jit_loop, "make_gymnax", make)
    train = (SACConfig().environment("gymnax:Pendulum-v1", normalize_actions=normalize, clip_actions=clip)
             .env_runners(num_envs_per_env_runner=2, rollout_fragment_length=50)
             .rl_module(model_config={"fcnet_hiddens": [8]})
             .training(train_batch_size_per_learner=8)).build_train_fn(num_iterations=1)
    jax.block_until_ready(jax.jit(train)(KEY))
    jax.effects_barrier()
    sent = np.concatenate([np.reshape(a, (-1,)) for a in log])
    assert sent.size == 100 and np.all(np.abs(sent) <= 2.0)
    if normalize:  # the policy's [-1, 1] spans the whole [-2, 2] torque range
        assert np.abs(sent).max() > 1.0
    else:
        assert np.abs(sent).max() <= 1.0
