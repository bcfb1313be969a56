"""RLlib's Atari wrapping on a synthetic image env (no ROMs needed)."""

import gymnasium as gym
import jax
import numpy as np

from jaxrl_modules import Columns
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
from jaxrl_modules.envs import wrap_atari_for_new_api_stack


class FakeALE:
    def __init__(self):
        self.lives_left = 3

    def lives(self):
        return self.lives_left


class SyntheticAtari(gym.Env):
    """210x160 RGB frames whose brightness is the step count; loses a life every 20 steps."""

    observation_space = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)
    action_space = gym.spaces.Discrete(4)

    def __init__(self):
        self.ale = FakeALE()
        self.t = 0
        self.actions = []
        self.resets = 0

    def get_action_meanings(self):
        return ["NOOP", "FIRE", "RIGHT", "LEFT"]

    def _frame(self):
        return np.full((210, 160, 3), self.t % 256, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.ale.lives_left = 0, 3
        self.resets += 1
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        self.actions.append(int(action))
        if self.t % 20 == 0:
            self.ale.lives_left -= 1
        return self._frame(), 1.0, self.ale.lives_left == 0, False, {}


def test_spaces_match_rllib():
    assert wrap_atari_for_new_api_stack(SyntheticAtari()).observation_space == gym.spaces.Box(-1, 1, (64, 64, 1), np.float32)
    assert wrap_atari_for_new_api_stack(SyntheticAtari(), framestack=4).observation_space.shape == (64, 64, 4)
    assert wrap_atari_for_new_api_stack(SyntheticAtari(), dim=84, framestack=4).observation_space.shape == (84, 84, 4)
    assert wrap_atari_for_new_api_stack(SyntheticAtari(), grayscale=False).observation_space.shape == (64, 64, 3)


def test_reset_noops_fire_skip_and_normalisation():
    base = SyntheticAtari()
    env = wrap_atari_for_new_api_stack(base, frameskip=1, framestack=4)
    obs, _ = env.reset(seed=0)
    noops = base.actions[:-2]
    assert 1 <= len(noops) <= 30 and set(noops) == {0} and base.actions[-2:] == [1, 2]  # no-ops, then FIRE, then 2
    assert obs.shape == (64, 64, 4) and np.allclose(obs, obs[..., :1])  # reset fills k copies
    base = SyntheticAtari()
    env = wrap_atari_for_new_api_stack(base)
    env.reset(seed=0)
    t0, n0 = base.t, len(base.actions)
    obs, reward, terminated, _, _ = env.step(3)
    assert reward == 4.0 and base.t == t0 + 4 and base.actions[n0:] == [3, 3, 3, 3]  # frameskip 4, rewards summed
    assert np.isclose(obs[0, 0, 0], base.t / 128.0 - 1.0, atol=1 / 128)  # max of the last two frames, normalised
    assert obs.dtype == np.float32 and obs.min() >= -1.0 and obs.max() < 1.0


def test_episodic_life():
    base = SyntheticAtari()
    env = wrap_atari_for_new_api_stack(base, frameskip=1)
    env.reset(seed=1)
    resets = base.resets
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(0)
    assert base.ale.lives_left == 2  # a lost life ends the learning episode ...
    env.reset()
    assert base.resets == resets  # ... but the next reset is not a real one


def test_default_cnn_takes_wrapped_frames():
    env = wrap_atari_for_new_api_stack(SyntheticAtari(), framestack=4)
    module = DefaultPPORLModule(observation_space=env.observation_space, action_space=env.action_space)
    params = module.init(jax.random.key(0))
    assert params["pi"]["out"]["kernel"].shape == (4 * 4 * 128, 4)  # RLlib 2.60's 64x64 filters: 2048 latent
    obs, _ = env.reset(seed=0)
    out = module.forward_inference(params, {Columns.OBS: obs[None]})
    assert out[Columns.ACTIONS].shape == (1,)
