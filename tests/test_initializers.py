"""The vmap-safe orthogonal initializer: jax's values, and no batched QR when vmapped (a batched CPU
QR can deadlock XLA's intra-op thread pool on 2 cores: jaxrl_modules/initializers.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import initializers
from jaxrl_modules.model_config import get_initializer_fn


def _qr_operand_ranks(jaxpr) -> list:
    """Ranks of the operands of every QR-like primitive, nested jaxprs (scan bodies, custom rules) included."""
    ranks = []
    for eqn in jaxpr.eqns:
        if any(word in eqn.primitive.name for word in ("qr", "geqrf", "householder")):
            ranks.append(eqn.invars[0].aval.ndim)
        for param in eqn.params.values():
            for inner in (param if isinstance(param, (list, tuple)) else [param]):
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    ranks += _qr_operand_ranks(inner)
    return ranks


@pytest.mark.parametrize("shape,column_axis", [((6, 4), -1), ((3, 8), -1), ((5, 2, 3), 0)])
def test_same_values_as_jax(shape, column_axis):
    key = jax.random.key(3)
    ours = initializers.orthogonal(1.5, column_axis)(key, shape)
    theirs = jax.nn.initializers.orthogonal(1.5, column_axis)(key, shape)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_vmapped_values_match_and_qr_is_unbatched():
    keys = jax.random.split(jax.random.key(0), 5)
    init = initializers.orthogonal(1.414)
    batched = jax.jit(jax.vmap(lambda k: init(k, (8, 4))))(keys)
    one_by_one = jnp.stack([jax.nn.initializers.orthogonal(1.414)(k, (8, 4)) for k in keys])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-6, atol=1e-6)
    nested = jax.vmap(jax.vmap(lambda k: init(k, (8, 4))))(keys.reshape(5, 1))
    np.testing.assert_allclose(nested[:, 0], one_by_one, rtol=1e-6, atol=1e-6)
    ranks = _qr_operand_ranks(jax.make_jaxpr(jax.vmap(lambda k: init(k, (8, 4))))(keys).jaxpr)
    assert ranks and all(r == 2 for r in ranks), ranks
    # jax's own initializer does batch the QR (what this module exists to avoid)
    theirs = _qr_operand_ranks(jax.make_jaxpr(jax.vmap(lambda k: jax.nn.initializers.orthogonal()(k, (8, 4))))(keys).jaxpr)
    assert max(theirs) == 3


@pytest.mark.parametrize("name", ["orthogonal", "orthogonal_", jax.nn.initializers.orthogonal])
def test_model_config_resolves_orthogonal_to_the_vmap_safe_one(name):
    init = get_initializer_fn(name, {"scale": 2.0})
    keys = jax.random.split(jax.random.key(1), 3)
    ranks = _qr_operand_ranks(jax.make_jaxpr(jax.vmap(lambda k: init(k, (4, 4))))(keys).jaxpr)
    assert ranks and all(r == 2 for r in ranks), ranks
    np.testing.assert_allclose(init(keys[0], (4, 4)), jax.nn.initializers.orthogonal(2.0)(keys[0], (4, 4)), atol=1e-6)
