"""Bad-input matrix for the action distributions: every input that is not an action (or dist
input, or kl partner) of theirs, and can be known at trace time, is a TypeError/ValueError naming
the distribution, what was expected and what was received."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import RLModuleSpec
from jaxrl_modules.algorithms.sac import DefaultSACRLModule
from jaxrl_modules.distributions import (Categorical, Deterministic, DiagGaussian, MultiCategorical, MultiDistribution,
                                         SquashedGaussian, default_dist_cls)

from conftest import raises_naming

F = jnp.float32
START_CAT = default_dist_cls(gym.spaces.Discrete(3, start=1))
MULTI = default_dist_cls(gym.spaces.MultiDiscrete([3, 2], start=[-1, 5]))
DICT_SPACE = gym.spaces.Dict({"a": gym.spaces.Discrete(3, start=1), "b": gym.spaces.Box(-1, 1, (2,), np.float32),
                              "c": gym.spaces.MultiDiscrete([3, 2])})
DICT = default_dist_cls(DICT_SPACE)
TUPLE = default_dist_cls(gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Box(-1, 1, (1,), np.float32))))


def cat(n=3, b=4):
    return START_CAT.from_logits(jnp.zeros((b, n), F)) if n == 3 else Categorical.from_logits(jnp.zeros((b, n), F))


def multi():
    return MULTI.from_logits(jnp.zeros((4, 5), F))


def gauss(d=2, b=4):
    return DiagGaussian.from_logits(jnp.zeros((b, 2 * d), F))


def squashed(d=2):
    return SquashedGaussian.from_logits(jnp.zeros((4, 2 * d), F))


def multidist():
    return DICT.from_logits(jnp.zeros((8, 12), F))


def dict_actions(**override):
    a = {"a": jnp.ones(8, jnp.int32), "b": jnp.zeros((8, 2), F), "c": jnp.zeros((8, 2), jnp.int32)}
    a.update(override)
    return a


CASES = [
    # --- Categorical: inputs
    ("cat-int-logits", TypeError, lambda: Categorical.from_logits(jnp.zeros((4, 3), jnp.int32)),
     ["Categorical.from_logits", "float array", "int32[4, 3]"]),
    ("cat-str-logits", TypeError, lambda: Categorical.from_logits("logits"), ["Categorical.from_logits", "float", "str"]),
    ("cat-none-logits", TypeError, lambda: Categorical.from_logits(None), ["Categorical.from_logits", "float", "NoneType"]),
    ("cat-scalar-logits", ValueError, lambda: Categorical.from_logits(jnp.float32(1.0)),
     ["Categorical.from_logits", "[B, d]", "scalar"]),
    ("cat-unknown-kwarg", TypeError, lambda: Categorical.from_logits(jnp.zeros((4, 3), F), temperature=2.0),
     ["Categorical.from_logits", "unknown argument", "temperature", "start"]),
    ("cat-rebind-start", ValueError, lambda: START_CAT.from_logits(jnp.zeros((4, 3), F), start=0),
     ["Categorical", "already binds", "start"]),
    ("cat-partial-unknown", TypeError, lambda: Categorical.get_partial_dist_cls(n=3),
     ["Categorical.get_partial_dist_cls", "unknown argument", "'n'"]),
    # --- Categorical: actions
    ("cat-float-actions", TypeError, lambda: cat().logp(jnp.ones(4, F)), ["Categorical.logp", "integer", "float32[4]"]),
    ("cat-bool-actions", TypeError, lambda: cat().logp(jnp.ones(4, bool)), ["Categorical.logp", "integer", "bool[4]"]),
    ("cat-column-actions", ValueError, lambda: cat().logp(jnp.ones((4, 1), jnp.int32)),
     ["Categorical.logp", "[..., 4]", "int32[4, 1]"]),
    ("cat-wrong-batch", ValueError, lambda: cat().logp(jnp.ones(5, jnp.int32)), ["Categorical.logp", "[..., 4]", "int32[5]"]),
    ("cat-none-actions", TypeError, lambda: cat().logp(None), ["Categorical.logp", "integer", "NoneType"]),
    ("cat-dict-actions", TypeError, lambda: cat().logp({"a": 1}), ["Categorical.logp", "integer", "{'a': int}"]),
    ("cat-prob-float", TypeError, lambda: cat().prob(jnp.ones(4, F)), ["Categorical.logp", "integer", "float32[4]"]),
    ("cat-in-jit", TypeError, lambda: jax.jit(lambda x: cat().logp(x))(jnp.ones(4, F)),
     ["Categorical.logp", "integer", "float32[4]"]),
    # --- Categorical: kl partners
    ("cat-kl-gauss", TypeError, lambda: cat().kl(gauss()), ["Categorical.kl", "Categorical over 3 categories", "DiagGaussian"]),
    ("cat-kl-n", ValueError, lambda: cat(4).kl(Categorical.from_logits(jnp.zeros((4, 5), F))),
     ["Categorical.kl", "over 4 categories", "over 5 categories"]),
    ("cat-kl-start", ValueError, lambda: cat().kl(Categorical.from_logits(jnp.zeros((4, 3), F))),
     ["Categorical.kl", "start 1", "over 3 categories"]),
    ("cat-kl-array", TypeError, lambda: cat().kl(jnp.zeros((4, 3))), ["Categorical.kl", "another Categorical", "ArrayImpl"]),
    # --- MultiCategorical
    ("mc-no-input-lens", ValueError, lambda: MultiCategorical.from_logits(jnp.zeros((4, 5), F)),
     ["MultiCategorical.from_logits", "input_lens", "nvec"]),
    ("mc-width", ValueError, lambda: MULTI.from_logits(jnp.zeros((4, 6), F)),
     ["MultiCategorical.from_logits", "[B, 5]", "float32[4, 6]"]),
    ("mc-int-logits", TypeError, lambda: MULTI.from_logits(jnp.zeros((4, 5), jnp.int32)),
     ["MultiCategorical.from_logits", "float", "int32[4, 5]"]),
    ("mc-start-len", ValueError, lambda: MultiCategorical.from_logits(jnp.zeros((4, 5), F), input_lens=(3, 2), start=(1,)),
     ["MultiCategorical", "one start per component", "start=[1]"]),
    ("mc-float-actions", TypeError, lambda: multi().logp(jnp.zeros((4, 2), F)),
     ["MultiCategorical.logp", "integer", "float32[4, 2]"]),
    ("mc-components", ValueError, lambda: multi().logp(jnp.zeros((4, 3), jnp.int32)),
     ["MultiCategorical.logp", "[..., 4, 2]", "int32[4, 3]"]),
    ("mc-flat-actions", ValueError, lambda: multi().logp(jnp.zeros(4, jnp.int32)),
     ["MultiCategorical.logp", "[..., 4, 2]", "int32[4]"]),
    ("mc-kl-lens", ValueError,
     lambda: multi().kl(default_dist_cls(gym.spaces.MultiDiscrete([2, 3])).from_logits(jnp.zeros((4, 5), F))),
     ["MultiCategorical.kl", "input_lens=[3, 2]", "input_lens=[2, 3]"]),
    ("mc-kl-start", ValueError,
     lambda: multi().kl(default_dist_cls(gym.spaces.MultiDiscrete([3, 2])).from_logits(jnp.zeros((4, 5), F))),
     ["MultiCategorical.kl", "start=[-1, 5]", "input_lens=[3, 2]"]),
    ("mc-kl-cat", TypeError, lambda: multi().kl(cat()), ["MultiCategorical.kl", "input_lens=[3, 2]", "Categorical over 3"]),
    # --- DiagGaussian
    ("dg-odd", ValueError, lambda: DiagGaussian.from_logits(jnp.zeros((4, 3), F)),
     ["DiagGaussian.from_logits", "[B, 2d]", "even", "float32[4, 3]"]),
    ("dg-int", TypeError, lambda: DiagGaussian.from_logits(jnp.zeros((4, 4), jnp.int32)),
     ["DiagGaussian.from_logits", "float", "int32[4, 4]"]),
    ("dg-list-of-str", TypeError, lambda: DiagGaussian.from_logits(["a", "b"]),
     ["DiagGaussian.from_logits", "float", "[str, str]"]),
    ("dg-kwarg", TypeError, lambda: DiagGaussian.from_logits(jnp.zeros((4, 4), F), low=-1.0),
     ["DiagGaussian.from_logits", "unknown argument", "low"]),
    ("dg-event", ValueError, lambda: gauss().logp(jnp.zeros((4, 3), F)), ["DiagGaussian.logp", "[..., 4, 2]", "float32[4, 3]"]),
    ("dg-no-event", ValueError, lambda: gauss().logp(jnp.zeros(4, F)), ["DiagGaussian.logp", "[..., 4, 2]", "float32[4]"]),
    ("dg-int-actions", TypeError, lambda: gauss().logp(jnp.zeros((4, 2), jnp.int32)),
     ["DiagGaussian.logp", "float", "int32[4, 2]"]),
    ("dg-kl-cat", TypeError, lambda: gauss().kl(cat()), ["DiagGaussian.kl", "DiagGaussian of dimension 2", "Categorical"]),
    ("dg-kl-dim", ValueError, lambda: gauss(2).kl(gauss(3)), ["DiagGaussian.kl", "dimension 2", "dimension 3"]),
    ("dg-kl-squashed", TypeError, lambda: gauss().kl(squashed()), ["DiagGaussian.kl", "DiagGaussian", "SquashedGaussian"]),
    # --- SquashedGaussian
    ("sq-odd", ValueError, lambda: SquashedGaussian.from_logits(jnp.zeros((4, 5), F)),
     ["SquashedGaussian.from_logits", "even", "float32[4, 5]"]),
    ("sq-event", ValueError, lambda: squashed().logp(jnp.zeros((4, 1), F)),
     ["SquashedGaussian.logp", "[..., 4, 2]", "float32[4, 1]"]),
    ("sq-kl-gauss", TypeError, lambda: squashed().kl(gauss()), ["SquashedGaussian.kl", "SquashedGaussian", "DiagGaussian"]),
    ("sq-kl-closed-form", ValueError, lambda: squashed().kl(squashed()), ["SquashedGaussian.kl", "closed form", "dimension 2"]),
    ("sq-entropy", ValueError, lambda: squashed().entropy(), ["SquashedGaussian", "entropy", "logp"]),
    # --- Deterministic
    ("det-shape", ValueError, lambda: gauss().to_deterministic().logp(jnp.zeros((4, 3), F)),
     ["Deterministic.logp", "[..., 4, 2]", "float32[4, 3]"]),
    ("det-float-for-discrete", TypeError, lambda: cat().to_deterministic().logp(jnp.ones(4, F)),
     ["Deterministic.logp", "integer", "float32[4]"]),
    # --- MultiDistribution
    ("md-unbound", ValueError, lambda: MultiDistribution.from_logits(jnp.zeros((4, 3), F)),
     ["MultiDistribution.from_logits", "child_distribution_cls_struct", "input_lens"]),
    ("md-width", ValueError, lambda: DICT.from_logits(jnp.zeros((8, 11), F)),
     ["MultiDistribution.from_logits", "[B, 12]", "float32[8, 11]"]),
    ("md-int-inputs", TypeError, lambda: DICT.from_logits(jnp.zeros((8, 12), jnp.int32)),
     ["MultiDistribution.from_logits", "float", "int32[8, 12]"]),
    ("md-missing-key", ValueError, lambda: multidist().logp({"a": jnp.ones(8, jnp.int32)}),
     ["MultiDistribution.logp", "'b': 'DiagGaussian'", "{'a': int32[8]}"]),
    ("md-extra-key", ValueError, lambda: multidist().logp(dict_actions(z=jnp.ones(8, jnp.int32))),
     ["MultiDistribution.logp", "'c': 'MultiCategorical'", "'z': int32[8]"]),
    ("md-tuple-for-dict", ValueError, lambda: multidist().logp((jnp.ones(8, jnp.int32), jnp.zeros((8, 2), F))),
     ["MultiDistribution.logp", "'a': 'Categorical'", "(int32[8], float32[8, 2])"]),
    ("md-flat-width", ValueError, lambda: multidist().logp(jnp.zeros((8, 4), F)),
     ["MultiDistribution.logp", "[B, 5]", "child action sizes [1, 2, 2]", "float32[8, 4]"]),
    ("md-child-dtype", TypeError, lambda: multidist().logp(dict_actions(a=jnp.ones(8, F))),
     ["Categorical.logp", "integer", "float32[8]"]),
    ("md-child-shape", ValueError, lambda: multidist().logp(dict_actions(b=jnp.zeros((8, 3), F))),
     ["DiagGaussian.logp", "[..., 8, 2]", "float32[8, 3]"]),
    ("md-child-str", TypeError, lambda: multidist().logp(dict_actions(a="left")),
     ["MultiDistribution.logp", "an array per child", "str"]),
    ("md-kl-structure", ValueError, lambda: TUPLE.from_logits(jnp.zeros((4, 4), F)).kl(
        default_dist_cls(gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(2)))).from_logits(jnp.zeros((4, 4), F))),
     ["MultiDistribution.kl", "('Categorical', 'DiagGaussian')", "('Categorical', 'Categorical')"]),
    ("md-kl-cat", TypeError, lambda: multidist().kl(cat()), ["MultiDistribution.kl", "MultiDistribution of", "Categorical"]),
    ("squashed-low-above-high", ValueError, lambda: SquashedGaussian.from_logits(jnp.zeros((4, 2), F), low=1.0, high=-1.0),
     ["SquashedGaussian.from_logits", "low < high", "low=1.0, high=-1.0"]),
    ("squashed-infinite-bound", ValueError, lambda: SquashedGaussian.from_logits(jnp.zeros((4, 2), F), high=float("inf")),
     ["SquashedGaussian.from_logits", "finite bounds", "high=inf"]),
    ("squashed-string-bound", TypeError, lambda: SquashedGaussian.from_logits(jnp.zeros((4, 2), F), low="-1"),
     ["SquashedGaussian.from_logits", "numbers or float arrays", "low='-1'"]),
    # --- default_dist_cls and the SAC module's space
    ("space-int-box", ValueError, lambda: default_dist_cls(gym.spaces.Box(0, 5, (2,), np.int32)),
     ["Box action spaces", "float dtype", "int32"]),
    ("space-2d-box", ValueError, lambda: default_dist_cls(gym.spaces.Box(-1, 1, (2, 2))), ["1-D", "(2, 2)"]),
    ("space-2d-nvec", ValueError, lambda: default_dist_cls(gym.spaces.MultiDiscrete([[2, 3], [4, 5]])),
     ["MultiDiscrete", "1-D nvec", "(2, 2)"]),
    ("space-text", ValueError, lambda: default_dist_cls(gym.spaces.Text(5)),
     ["Unsupported action space", "Discrete, Box, MultiDiscrete, Tuple or Dict", "Text"]),
    ("space-empty-dict", ValueError, lambda: default_dist_cls(gym.spaces.Dict({})),
     ["Dict action spaces", "at least one", "Dict()"]),
    ("space-empty-tuple-nested", ValueError,
     lambda: default_dist_cls(gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Tuple(())))),
     ["Tuple action spaces", "at least one sub-space", "Tuple()"]),
    ("space-zero-width-box", ValueError, lambda: default_dist_cls(gym.spaces.Box(-1, 1, (0,), np.float32)),
     ["Box action spaces", "at least one dimension", "(0,)"]),
    ("space-empty-nvec", ValueError, lambda: default_dist_cls(gym.spaces.MultiDiscrete(np.zeros(0, np.int64))),
     ["MultiDiscrete action spaces", "at least one component", "MultiDiscrete([])"]),
    ("module-zero-width-obs", ValueError, lambda: RLModuleSpec(
        DefaultSACRLModule, gym.spaces.Box(-1, 1, (0,)), gym.spaces.Box(-1, 1, (2,), np.float32)).build().init(jax.random.key(0)),
     ["observation space", "at least one value", "(0,)"]),
    ("sac-unbounded", ValueError, lambda: RLModuleSpec(DefaultSACRLModule, gym.spaces.Box(-1, 1, (3,)),
                                                        gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)).build(),
     ["DefaultSACRLModule", "bounded Box", "Box(-inf, inf, (2,), float32)"]),
    ("sac-discrete", ValueError, lambda: RLModuleSpec(DefaultSACRLModule, gym.spaces.Box(-1, 1, (3,)),
                                                       gym.spaces.Discrete(3)).build(),
     ["DefaultSACRLModule", "1-D float Box", "Discrete(3)"]),
]


@pytest.mark.parametrize("exc, fn, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_distribution_input(exc, fn, fragments):
    raises_naming(exc, fn, *fragments)


def test_matrix_size():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def test_valid_but_unusual_inputs_are_accepted():
    """Not errors: Python ints, NumPy int64 actions, a Box dim of 1, a flat list of per-child
    actions."""
    d = cat()
    assert d.logp(np.array([1, 2, 3, 1], np.int64)).shape == (4,)
    assert Categorical.from_logits(jnp.zeros(3, F)).logp(2).shape == ()
    assert DiagGaussian.from_logits(jnp.zeros((4, 2), F)).logp(jnp.zeros((4, 1), F)).shape == (4,)
    md = multidist()
    acts = dict_actions()
    assert jnp.allclose(md.logp([acts["a"], acts["b"], acts["c"]]), md.logp(acts))
    assert Deterministic.from_logits(jnp.zeros((4, 2), F)).logp(jnp.zeros((4, 2), F)).shape == (4,)
