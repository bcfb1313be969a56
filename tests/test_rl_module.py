"""The default PPO/BC modules through the functional API: shapes, rules, jit/vmap/grad."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns, DefaultModelConfig, RLModule, RLModuleSpec
from jaxrl_modules.algorithms.bc import DefaultBCRLModule
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
from jaxrl_modules.distributions import Categorical

from conftest import CARTPOLE_ACT, CARTPOLE_OBS


def shapes(tree):
    return jax.tree_util.tree_map(lambda x: tuple(x.shape), tree)


def test_ppo_forward_passes(ppo_module, ppo_params, obs_batch):
    batch = {Columns.OBS: obs_batch}
    out = ppo_module.forward_exploration(ppo_params, batch, jax.random.key(1))
    assert out[Columns.ACTIONS].shape == (8,) and out[Columns.ACTION_DIST_INPUTS].shape == (8, 2)
    dist = Categorical.from_logits(out[Columns.ACTION_DIST_INPUTS])
    assert jnp.allclose(out[Columns.ACTION_LOGP], dist.logp(out[Columns.ACTIONS]))
    inf = ppo_module.forward_inference(ppo_params, batch)
    assert jnp.array_equal(inf[Columns.ACTIONS], jnp.argmax(inf[Columns.ACTION_DIST_INPUTS], -1))
    train = ppo_module.forward_train(ppo_params, batch)
    assert train[Columns.EMBEDDINGS].shape == (8, 16)
    v1 = ppo_module.compute_values(ppo_params, batch)
    v2 = ppo_module.compute_values(ppo_params, batch, embeddings=train[Columns.EMBEDDINGS])
    assert v1.shape == (8,) and jnp.allclose(v1, v2)


def test_same_key_same_actions(ppo_module, ppo_params, obs_batch):
    batch = {Columns.OBS: obs_batch}
    a = ppo_module.forward_exploration(ppo_params, batch, jax.random.key(7))[Columns.ACTIONS]
    b = ppo_module.forward_exploration(ppo_params, batch, jax.random.key(7))[Columns.ACTIONS]
    big = {Columns.OBS: np.zeros((512, 4), np.float32)}
    c = ppo_module.forward_exploration(ppo_params, big, jax.random.key(7))[Columns.ACTIONS]
    d = ppo_module.forward_exploration(ppo_params, big, jax.random.key(8))[Columns.ACTIONS]
    assert jnp.array_equal(a, b) and not jnp.array_equal(c, d)


class CountingModule(RLModule):
    traces = 0

    def setup(self):
        import flax.linen as nn

        self.net = nn.Dense(2)

    def _forward(self, batch, **kwargs):
        type(self).traces += 1
        return {Columns.ACTION_DIST_INPUTS: self.net(batch[Columns.OBS])}


def test_compiled_once_per_shape():
    m = CountingModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT)
    params = m.init(jax.random.key(0))
    CountingModule.traces = 0
    for i in range(5):
        m.forward_exploration(params, {Columns.OBS: np.ones((3, 4), np.float32) * i}, jax.random.key(i))
    assert CountingModule.traces == 1
    m.forward_exploration(params, {Columns.OBS: np.ones((5, 4), np.float32)}, jax.random.key(0))
    assert CountingModule.traces == 2  # a new batch size is a new shape
    for _ in range(3):
        m.forward_inference(params, {Columns.OBS: np.ones((3, 4), np.float32)})
    assert CountingModule.traces == 3


def test_inside_user_jit_vmap_grad(ppo_module, ppo_params, obs_batch):
    @jax.jit
    def act(params, obs, rng):
        return ppo_module.forward_exploration(params, {Columns.OBS: obs}, rng)[Columns.ACTIONS]

    assert act(ppo_params, obs_batch, jax.random.key(0)).shape == (8,)
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, x + 0.1]), ppo_params)
    outs = jax.vmap(lambda p: ppo_module.forward_inference(p, {Columns.OBS: obs_batch})[Columns.ACTION_DIST_INPUTS])(stacked)
    assert outs.shape == (2, 8, 2)

    def loss(params):
        out = ppo_module.forward_train(params, {Columns.OBS: obs_batch})
        logp = Categorical.from_logits(out[Columns.ACTION_DIST_INPUTS]).logp(jnp.zeros(8, jnp.int32))
        return -logp.mean() + ppo_module.compute_values(params, {Columns.OBS: obs_batch}).mean()

    grads = jax.grad(loss)(ppo_params)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(ppo_params)
    assert float(jnp.abs(grads["pi"]["out"]["kernel"]).sum()) > 0


def test_inference_only_drops_critic(small_config):
    full_cfg = DefaultModelConfig(fcnet_hiddens=[8], vf_share_layers=False)
    full = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=full_cfg)
    inf = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=full_cfg,
                             inference_only=True)
    fp, ip = full.init(jax.random.key(0)), inf.init(jax.random.key(0))
    assert set(fp) == {"actor_encoder", "critic_encoder", "pi", "vf"} and set(ip) == {"actor_encoder", "pi"}
    dropped = full.inference_params(fp)
    assert shapes(dropped) == shapes(ip)
    obs = {Columns.OBS: np.ones((2, 4), np.float32)}
    assert jnp.allclose(inf.forward_inference(dropped, obs)[Columns.ACTION_DIST_INPUTS],
                        full.forward_inference(fp, obs)[Columns.ACTION_DIST_INPUTS])
    with pytest.raises(RuntimeError, match="inference_only"):
        inf.forward_train(ip, obs)
    assert inf.get_non_inference_attributes() == ["vf", "critic_encoder"]


@pytest.mark.parametrize("space,dim", [
    (gym.spaces.Box(-1, 1, (3,), np.float32), 6),
    (gym.spaces.MultiDiscrete([2, 4]), 6),
])
def test_ppo_action_spaces(space, dim):
    m = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=space, model_config={"fcnet_hiddens": [8]})
    p = m.init(jax.random.key(0))
    out = m.forward_exploration(p, {Columns.OBS: np.ones((2, 4), np.float32)}, jax.random.key(0))
    assert out[Columns.ACTION_DIST_INPUTS].shape == (2, dim) and out[Columns.ACTION_LOGP].shape == (2,)
    assert out[Columns.ACTIONS].shape == (2,) + space.shape


def test_free_log_std_and_clipping():
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    m = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=space,
                           model_config=DefaultModelConfig(fcnet_hiddens=[8], free_log_std=True))
    p = m.init(jax.random.key(0))
    assert p["pi"]["log_std"].shape == (2,) and jnp.all(p["pi"]["log_std"] == 0)
    out = m.forward_inference(p, {Columns.OBS: np.ones((3, 4), np.float32)})
    assert jnp.all(out[Columns.ACTION_DIST_INPUTS][:, 2:] == 0)
    with pytest.raises(ValueError, match="free_log_std"):
        DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                           model_config=DefaultModelConfig(free_log_std=True)).init(jax.random.key(0))


def test_cnn_default_filters_and_errors():
    img = gym.spaces.Box(0, 1, (10, 10, 3), np.float32)
    m = DefaultPPORLModule(observation_space=img, action_space=CARTPOLE_ACT)
    p = m.init(jax.random.key(0))
    assert p["encoder"]["cnn"]["conv_0"]["kernel"].shape == (5, 5, 3, 16)
    assert p["pi"]["out"]["kernel"].shape == (3 * 3 * 32, 2)  # RLlib's 288-dim latent for 10x10
    custom = DefaultPPORLModule(observation_space=gym.spaces.Box(0, 1, (12, 12, 1), np.float32), action_space=CARTPOLE_ACT,
                                model_config={"conv_filters": [[4, 3, 2], [8, [3, 3], 2, "valid"]]})
    cp = custom.init(jax.random.key(0))
    assert cp["pi"]["out"]["kernel"].shape == (2 * 2 * 8, 2)
    with pytest.raises(ValueError, match="No default conv_filters for observation shape \\(12, 12, 1\\)"):
        DefaultPPORLModule(observation_space=gym.spaces.Box(0, 1, (12, 12, 1), np.float32),
                           action_space=CARTPOLE_ACT).init(jax.random.key(0))


def test_lstm_module_state():
    cfg = DefaultModelConfig(fcnet_hiddens=[8], use_lstm=True, lstm_cell_size=6)
    m = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=cfg)
    assert m.is_stateful() and shapes(m.get_initial_state()) == {"h": (6,), "c": (6,)}
    p = m.init(jax.random.key(0))
    state = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (3,) + x.shape), m.get_initial_state())
    batch = {Columns.OBS: np.ones((3, 5, 4), np.float32), Columns.STATE_IN: state}
    out = m.forward_exploration(p, batch, jax.random.key(0))
    assert out[Columns.ACTION_DIST_INPUTS].shape == (3, 5, 2) and out[Columns.ACTIONS].shape == (3, 5)
    assert shapes(out[Columns.STATE_OUT]) == {"h": (3, 6), "c": (3, 6)}
    train = m.forward_train(p, batch)
    assert train[Columns.EMBEDDINGS].shape == (3, 5, 6) and m.compute_values(p, batch).shape == (3, 5)
    # Stepping one timestep at a time carries the state exactly.
    s, steps = state, []
    for t in range(5):
        o = m.forward_inference(p, {Columns.OBS: batch[Columns.OBS][:, t:t + 1], Columns.STATE_IN: s})
        s = o[Columns.STATE_OUT]
        steps.append(o[Columns.ACTION_DIST_INPUTS])
    assert jnp.allclose(jnp.concatenate(steps, 1), out[Columns.ACTION_DIST_INPUTS], atol=1e-5)
    sep = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                             model_config={"use_lstm": True, "lstm_cell_size": 4, "fcnet_hiddens": [4], "vf_share_layers": False})
    assert set(sep.get_initial_state()) == {"actor", "critic"}


def test_bc_module(small_config):
    m = RLModuleSpec(DefaultBCRLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config=small_config).build()
    p = m.init(jax.random.key(0))
    assert set(p) == {"encoder", "pi"}
    out = m.forward_train(p, {Columns.OBS: np.ones((2, 4), np.float32)})
    assert out[Columns.ACTION_DIST_INPUTS].shape == (2, 2)


def test_spec_build_needs_observation_space():
    with pytest.raises(ValueError, match="needs an observation_space"):
        RLModuleSpec(DefaultPPORLModule, action_space=CARTPOLE_ACT).build()


def test_param_and_batch_checks_run_only_at_trace_time(monkeypatch):
    """The params comparison with init's structure runs when a jitted forward is traced, never
    per call: the same trace counter as above, plus a counter on the check itself."""
    import jaxrl_modules.rl_module as rl_module_lib

    calls = {"params": 0, "rng": 0}
    real_params, real_rng = rl_module_lib.check_params, rl_module_lib.check_rng

    def counting_params(*args, **kwargs):
        calls["params"] += 1
        return real_params(*args, **kwargs)

    def counting_rng(*args, **kwargs):
        calls["rng"] += 1
        return real_rng(*args, **kwargs)

    monkeypatch.setattr(rl_module_lib, "check_params", counting_params)
    monkeypatch.setattr(rl_module_lib, "check_rng", counting_rng)
    m = CountingModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT)
    params = m.init(jax.random.key(0))
    CountingModule.traces = 0
    for i in range(20):
        m.forward_exploration(params, {Columns.OBS: np.full((3, 4), i, np.float32)}, jax.random.key(i))
    for i in range(20):
        m.forward_inference(params, {Columns.OBS: np.full((3, 4), i, np.float32)})
    # one trace per phase, no per-call work (the third rng check is init's own, at its trace)
    assert CountingModule.traces == 2 and calls == {"params": 2, "rng": 3}
    with pytest.raises(ValueError, match=r"params\['net'\]\['kernel'\] has shape \(4, 3\)"):
        m.forward_inference({"net": {"kernel": np.zeros((4, 3), np.float32), "bias": np.zeros(2, np.float32)}},
                            {Columns.OBS: np.zeros((3, 4), np.float32)})


def test_dqn_forward_target_is_q_of_target_params_on_obs():
    """RLlib's forward_target: Q values of batch["obs"] under the target params; the DQN learner's
    TD target uses them on the next observations."""
    from jaxrl_modules.algorithms.dqn import DefaultDQNRLModule
    from jaxrl_modules.algorithms.dqn.learner import DQNLearner, td_targets
    from jaxrl_modules.algorithms.dqn.module import QF_PREDS
    from jaxrl_modules.algorithms.dqn.config import DQNConfig

    m = DefaultDQNRLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config={"fcnet_hiddens": [4]})
    params = m.init(jax.random.key(0))
    target = jax.tree_util.tree_map(lambda x: x + 0.5, params)
    rng = np.random.default_rng(0)
    obs, next_obs = (rng.normal(size=(5, 4)).astype(np.float32) for _ in range(2))
    q_target = m.forward_target(target, {Columns.OBS: obs})[QF_PREDS]
    assert q_target.shape == (5, 2)
    assert jnp.allclose(q_target, m.compute_q_values(target, {Columns.OBS: obs})[QF_PREDS])
    assert not jnp.allclose(q_target, m.compute_q_values(params, {Columns.OBS: obs})[QF_PREDS])
    cfg = DQNConfig().training(double_q=False, gamma=0.9)
    learner = DQNLearner(m, cfg)
    batch = {Columns.OBS: obs, Columns.NEXT_OBS: next_obs, Columns.ACTIONS: np.zeros(5, np.int32),
             Columns.REWARDS: np.ones(5, np.float32), Columns.TERMINATEDS: np.zeros(5, bool)}
    _, metrics = learner.loss(params, target, batch)
    q = m.compute_q_values(params, {Columns.OBS: obs})[QF_PREDS][:, 0]
    y = td_targets(batch[Columns.REWARDS], batch[Columns.TERMINATEDS],
                   m.compute_q_values(target, {Columns.OBS: next_obs})[QF_PREDS], None, 0.9)
    assert jnp.allclose(metrics["td_error_mean"], jnp.abs(q - y).mean(), atol=1e-5)


def test_raw_uint32_keys_and_typed_keys_sample_alike(ppo_module, ppo_params, obs_batch):
    raw = ppo_module.forward_exploration(ppo_params, {Columns.OBS: obs_batch}, jax.random.PRNGKey(11))
    typed = ppo_module.forward_exploration(ppo_params, {Columns.OBS: obs_batch}, jax.random.key(11))
    assert jnp.array_equal(raw[Columns.ACTIONS], typed[Columns.ACTIONS])
