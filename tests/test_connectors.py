import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
from jaxrl_modules.connectors import FlattenObservations


@pytest.mark.parametrize("space,n", [
    (gym.spaces.Discrete(3), 3), (gym.spaces.MultiDiscrete([2, 3]), 5), (gym.spaces.Box(0, 1, (2, 3)), 6),
    (gym.spaces.Box(0, 1, ()), 1), (gym.spaces.MultiBinary(3), 3),
    (gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Box(0, 1, (2,)))), 4),
    (gym.spaces.Dict({"z": gym.spaces.Discrete(2), "a": gym.spaces.Box(0, 1, (2,))}), 4),
])
def test_flattened_sizes(space, n):
    f = FlattenObservations(space)
    assert f.observation_space == gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)
    space.seed(0)
    samples = [space.sample() for _ in range(3)]
    out = f(jax.tree_util.tree_map(lambda *xs: np.stack(xs), *samples))
    assert out.shape == (3, n) and out.dtype == jnp.float32


def test_values_and_order_inside_jit():
    space = gym.spaces.Dict({"z": gym.spaces.Discrete(3), "a": gym.spaces.MultiDiscrete([2, 2])})
    f = FlattenObservations(space)
    obs = {"z": np.array([2, 0]), "a": np.array([[1, 0], [0, 1]])}
    out = jax.jit(f)(obs)
    assert out.tolist() == [[0, 1, 1, 0, 0, 0, 1], [1, 0, 0, 1, 1, 0, 0]]  # a first (sorted keys), then z


def test_start_of_discrete_and_multi_discrete_observations():
    space = gym.spaces.Tuple((gym.spaces.Discrete(3, start=-1), gym.spaces.MultiDiscrete([2, 3], start=[5, -2])))
    out = FlattenObservations(space)((np.array([-1, 1]), np.array([[5, -2], [6, 0]])))
    assert out.tolist() == [[1, 0, 0, 1, 0, 1, 0, 0], [0, 0, 1, 0, 1, 0, 0, 1]]


def test_flattened_space_feeds_a_default_module():
    f = FlattenObservations(gym.spaces.Discrete(5))
    m = DefaultPPORLModule(observation_space=f.observation_space, action_space=gym.spaces.Discrete(2),
                           model_config={"fcnet_hiddens": [8]})
    p = m.init(jax.random.key(0))
    out = m.forward_inference(p, {Columns.OBS: f(np.array([0, 4]))})
    assert out[Columns.ACTIONS].shape == (2,)
    with pytest.raises(ValueError, match="cannot flatten"):
        FlattenObservations(gym.spaces.Text(3))


def test_true_next_obs_takes_each_ended_env_final_obs_for_tuple_and_dict_observations():
    """Same-step autoreset puts a finished env's final observation in `info`; for a Tuple or Dict
    observation every component of that env's row is replaced (the host loops bootstrap from it)."""
    import numpy as np

    from jaxrl_modules.algorithms.env_runner import true_next_obs

    tuple_obs = (np.array([1, 2, 3]), np.array([10, 20, 30]))
    info = {"_final_obs": np.array([False, True, False]), "final_obs": np.array([None, (7, 70), None], dtype=object)}
    fixed = true_next_obs(tuple_obs, info)
    assert [a.tolist() for a in fixed] == [[1, 7, 3], [10, 70, 30]] and tuple_obs[0].tolist() == [1, 2, 3]
    dict_obs = {"a": np.zeros((2, 2)), "b": np.array([5, 6])}
    final = np.array([{"a": np.ones(2), "b": 9}, None], dtype=object)
    fixed = true_next_obs(dict_obs, {"_final_obs": np.array([True, False]), "final_obs": final})
    assert fixed["a"].tolist() == [[1, 1], [0, 0]] and fixed["b"].tolist() == [9, 6]
    array_obs = np.arange(6.0).reshape(3, 2)
    fixed = true_next_obs(array_obs, {"_final_obs": np.array([False, False, True]),
                                      "final_obs": np.array([None, None, np.array([-1.0, -2.0])], dtype=object)})
    assert fixed.tolist() == [[0, 1], [2, 3], [-1, -2]] and array_obs[2].tolist() == [4, 5]
