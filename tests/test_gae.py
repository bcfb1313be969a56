import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules.algorithms.targets import compute_gae, standardize


def reference_gae(r, v, d, last, gamma, lam):
    adv = np.zeros_like(r)
    gae, next_v = 0.0, last
    for t in reversed(range(len(r))):
        delta = r[t] + gamma * next_v * (1 - d[t]) - v[t]
        gae = delta + gamma * lam * (1 - d[t]) * gae
        adv[t], next_v = gae, v[t]
    return adv


@pytest.mark.parametrize("jit", [False, True])
def test_gae_matches_hand_computed(jit):
    r = np.array([1.0, 0.0, 2.0, 1.0], np.float32)
    v = np.array([0.5, 0.2, -0.1, 0.3], np.float32)
    d = np.array([0, 1, 0, 0], np.float32)
    adv, targets = (jax.jit(compute_gae, static_argnums=(4, 5)) if jit else compute_gae)(r, v, d, jnp.asarray(0.7), 0.9, 0.8)
    expected = reference_gae(r, v, d, 0.7, 0.9, 0.8)
    # Step 1 ends an episode: its advantage is r - v, no bootstrap.
    assert np.isclose(expected[1], 0.0 - 0.2)
    np.testing.assert_allclose(adv, expected, rtol=1e-6)
    np.testing.assert_allclose(targets, expected + v, rtol=1e-6)


def test_gae_vmaps_over_envs():
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    d = (rng.random((5, 3)) < 0.3).astype(np.float32)
    last = rng.normal(size=3).astype(np.float32)
    adv, _ = compute_gae(r, v, d, last, 0.99, 0.95)
    for i in range(3):
        np.testing.assert_allclose(adv[:, i], reference_gae(r[:, i], v[:, i], d[:, i], last[i], 0.99, 0.95), rtol=1e-5)


def test_standardize_with_mask():
    x = jnp.array([1.0, 2.0, 3.0, 100.0])
    out = standardize(x, jnp.array([1, 1, 1, 0]))
    np.testing.assert_allclose(out[:3], (x[:3] - 2.0) / np.std([1.0, 2.0, 3.0]), rtol=1e-5)
