import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules.distributions import (Categorical, DiagGaussian, MultiCategorical, MultiDistribution,
                                         SquashedGaussian, default_dist_cls)

KEY = jax.random.key(0)


def test_categorical_closed_forms():
    logits = jnp.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    d = Categorical.from_logits(logits)
    p = jax.nn.softmax(logits)
    assert jnp.allclose(d.logp(jnp.array([2, 0])), jnp.log(jnp.array([p[0, 2], p[1, 0]])))
    assert jnp.allclose(d.entropy(), -(p * jnp.log(p)).sum(-1))
    q = Categorical.from_logits(jnp.zeros((2, 3)))
    assert jnp.allclose(d.kl(q), (p * (jnp.log(p) - jnp.log(1 / 3))).sum(-1), atol=1e-6)
    assert d.to_deterministic().sample(seed=KEY).tolist() == [2, 0]
    assert Categorical.required_input_dim(gym.spaces.Discrete(5)) == 5


def test_diag_gaussian_closed_forms():
    mean, log_std = jnp.array([[0.5, -1.0]]), jnp.array([[0.1, -0.3]])
    d = DiagGaussian.from_logits(jnp.concatenate([mean, log_std], -1))
    x = jnp.array([[0.2, 0.0]])
    std = jnp.exp(log_std)
    expected = (-0.5 * ((x - mean) / std) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)).sum(-1)
    assert d.logp(x).shape == (1,) and jnp.allclose(d.logp(x), expected)
    assert jnp.allclose(d.entropy(), (0.5 + 0.5 * jnp.log(2 * jnp.pi) + log_std).sum(-1))
    det = d.to_deterministic()
    assert jnp.allclose(det.sample(seed=KEY), mean) and det.logp(mean).shape == (1,)
    other = DiagGaussian.from_logits(jnp.zeros((1, 4)))
    kl = (jnp.log(1 / std) + (std**2 + mean**2) / 2 - 0.5).sum(-1)
    assert jnp.allclose(d.kl(other), kl, atol=1e-6)
    assert DiagGaussian.required_input_dim(gym.spaces.Box(-1, 1, (3,))) == 6


def test_squashed_gaussian_bounds_and_logp():
    inputs = jnp.array([[0.3, 10.0]])  # log_std clamps to 2
    d = SquashedGaussian.from_logits(inputs, low=-2.0, high=2.0)
    a = d.sample(seed=KEY, sample_shape=(1000,))
    assert jnp.all(jnp.abs(a) <= 2.0)
    u = jnp.array([[0.4]])
    val = 2.0 * jnp.tanh(u)
    base = -0.5 * ((u - 0.3) / jnp.exp(2.0)) ** 2 - 2.0 - 0.5 * jnp.log(2 * jnp.pi)
    expected = (base - jnp.log(2.0 * (1 - jnp.tanh(u) ** 2))).sum(-1)
    assert jnp.allclose(d.logp(val), expected, atol=1e-4)
    assert jnp.isfinite(d.logp(jnp.array([[2.0]]))).all()
    assert jnp.allclose(d.to_deterministic().sample(seed=KEY), 2.0 * jnp.tanh(0.3))
    with pytest.raises(ValueError):
        d.entropy()


def test_multi_categorical():
    space = gym.spaces.MultiDiscrete([2, 3])
    cls = default_dist_cls(space)
    logits = jnp.arange(10.0).reshape(2, 5)
    d = cls.from_logits(logits)
    a = d.sample(seed=KEY)
    assert a.shape == (2, 2)
    lp = Categorical.from_logits(logits[:, :2]).logp(a[:, 0]) + Categorical.from_logits(logits[:, 2:]).logp(a[:, 1])
    assert jnp.allclose(d.logp(a), lp)
    assert d.to_deterministic().sample(seed=KEY).tolist() == [[1, 2], [1, 2]]
    assert cls.required_input_dim(space) == 5
    with pytest.raises(ValueError, match="already binds"):
        cls.from_logits(logits, input_lens=(2, 3))
    assert isinstance(d, MultiCategorical)


def test_multi_distribution_dict_and_tuple():
    space = gym.spaces.Dict({"b": gym.spaces.Box(-1, 1, (2,)), "a": gym.spaces.Discrete(3)})
    cls = default_dist_cls(space)
    assert cls.required_input_dim(space) == 7
    inputs = jnp.ones((4, 7))
    d = cls.from_logits(inputs)
    s = d.sample(seed=KEY)
    assert s["a"].shape == (4,) and s["b"].shape == (4, 2)
    lp = Categorical.from_logits(inputs[:, :3]).logp(s["a"]) + DiagGaussian.from_logits(inputs[:, 3:]).logp(s["b"])
    assert jnp.allclose(d.logp(s), lp)
    det = d.to_deterministic().sample(seed=KEY)
    assert det["b"].shape == (4, 2) and d.to_deterministic().logp(det).shape == (4,)
    tup = default_dist_cls(gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Box(-1, 1, (2,)))))
    assert tup.required_input_dim(None) == 6
    direct = MultiDistribution((Categorical.from_logits(inputs[:, :3]), DiagGaussian.from_logits(inputs[:, 3:])))
    assert direct.entropy().shape == (4,)


def test_unsupported_action_spaces():
    with pytest.raises(ValueError, match="float dtype"):
        default_dist_cls(gym.spaces.Box(0, 5, (2,), np.int32))
    with pytest.raises(ValueError, match="1-D"):
        default_dist_cls(gym.spaces.Box(-1, 1, (2, 2)))
    with pytest.raises(ValueError, match="Unsupported action space"):
        default_dist_cls(gym.spaces.Text(5))


def test_squashed_gaussian_sample_and_log_prob_matches_log_prob():
    d = SquashedGaussian.from_logits(jnp.array([[0.1, -0.2, 0.0, -1.0]]), low=-2.0, high=2.0)
    a, lp = d.sample_and_log_prob(seed=KEY)
    assert a.shape == (1, 2) and lp.shape == (1,)
    assert jnp.allclose(lp, d.logp(a), atol=1e-3)


def test_multi_categorical_takes_the_spaces_numpy_nvec_and_start():
    space = gym.spaces.MultiDiscrete([3, 2], start=[1, -1])
    dist = MultiCategorical.get_partial_dist_cls(input_lens=space.nvec, start=space.start).from_logits(jnp.zeros((4, 5)))
    assert np.array_equal(dist.mode(), np.tile([1, -1], (4, 1)))
    assert all(space.contains(np.asarray(a)) for a in dist.sample(seed=jax.random.key(0)))


NESTED = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (3,)),
                                                                     "y": gym.spaces.MultiDiscrete([2, 3])})))


def test_multi_distribution_is_a_distrax_joint_over_its_children():
    """Sampling, log-prob, entropy, KL and mode are distrax.Joint's over the same children, exactly."""
    import distrax

    cls = default_dist_cls(NESTED)
    x = jax.random.normal(jax.random.key(1), (5, cls.required_input_dim(NESTED)))
    d, d2 = cls.from_logits(x), cls.from_logits(0.5 * x)
    j, j2 = distrax.Joint(d.children), distrax.Joint(d2.children)
    assert isinstance(d, distrax.Joint) and d.batch_shape == (5,)
    same = lambda a, b: jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, a, b))  # noqa: E731
    assert same(d.sample(seed=KEY, sample_shape=(2,)), j.sample(seed=KEY, sample_shape=(2,)))
    s = d.sample(seed=KEY)
    assert same(s, j.sample(seed=KEY)) and s[1]["x"].shape == (5, 3)
    assert same(d.logp(s), j.log_prob(s)) and same(d.entropy(), j.entropy())
    assert same(d.kl(d2), j.kl_divergence(j2)) and same(d.mode(), j.mode())
    with jax.numpy_rank_promotion("allow"):  # distrax's Categorical.sample_and_log_prob broadcasts [1, B, n] by [B, n]
        a, lp = d.sample_and_log_prob(seed=KEY)
    assert jnp.allclose(lp, d.logp(a), atol=1e-5)
    flat = jnp.concatenate([a[0][:, None].astype(jnp.float32), a[1]["x"], a[1]["y"].astype(jnp.float32)], -1)
    assert same(d.logp(flat), d.logp(a)) and same(d.logp([a[0], a[1]]), d.logp(a))


def test_deterministic_multi_distribution_takes_the_flat_action_form():
    """`to_deterministic()` of a mixed Tuple/Dict keeps each Box child's width in the flat `[B, n]` form."""
    cls = default_dist_cls(NESTED)
    d = cls.from_logits(jnp.ones((4, cls.required_input_dim(NESTED)))).to_deterministic()
    a = d.sample(seed=KEY)
    flat = jnp.concatenate([a[0][:, None].astype(jnp.float32), a[1]["x"], a[1]["y"].astype(jnp.float32)], -1)
    assert d.flat_action_size() == 6 and flat.shape == (4, 6)
    assert np.array_equal(d.logp(flat), np.zeros(4)) and np.array_equal(d.logp(a), np.zeros(4))
    assert np.all(np.isneginf(d.logp(flat + 1.0)))
