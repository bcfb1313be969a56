"""RLlib's Atari wrapping: on a synthetic image env, then on real ALE frames (ale-py ships its ROMs)."""

import gymnasium as gym
import jax
import numpy as np
import pytest

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


# ----------------------------------------------------------------- real ALE frames (ale-py ships its ROMs)
class Recorder(gym.Wrapper):
    """Innermost wrapper: records the base env's actions, resets and rewards."""

    def __init__(self, env):
        super().__init__(env)
        self.actions, self.resets, self.rewards = [], 0, []

    def reset(self, **kwargs):
        self.resets += 1
        return self.env.reset(**kwargs)

    def step(self, action):
        self.actions.append(int(action))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.rewards.append(float(reward))
        return obs, reward, terminated, truncated, info


def _ale(game="ALE/Breakout-v5"):
    pytest.importorskip("ale_py")
    from jaxrl_modules.envs.registry import ATARI_MAKE_DEFAULTS, register_ale

    register_ale()
    return Recorder(gym.make(game, **ATARI_MAKE_DEFAULTS))


def _process(rgb, dim=64):
    """The expected frame: PIL grayscale, area-resized, x / 128 - 1."""
    from PIL import Image

    gray = np.asarray(Image.fromarray(rgb).convert("L").resize((dim, dim), Image.BOX), np.uint8)
    return gray.astype(np.float32) / 128.0 - 1.0


def test_real_ale_frames_shape_range_and_stacking_order():
    base = _ale()
    env = wrap_atari_for_new_api_stack(base, frameskip=1, framestack=4)
    assert env.observation_space == gym.spaces.Box(-1, 1, (64, 64, 4), np.float32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 4) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert obs.min() >= -1.0 and obs.max() <= 0.9921875 and obs.std() > 0  # a real, non-blank screen
    assert all(np.array_equal(obs[..., i], obs[..., 0]) for i in range(4))  # reset fills 4 copies
    assert np.allclose(obs[..., -1], _process(base.unwrapped.ale.getScreenRGB()))
    frames = [obs]
    for action in (2, 2, 3, 3, 2, 0):
        obs, *_ = env.step(action)
        assert np.allclose(obs[..., -1], _process(base.unwrapped.ale.getScreenRGB()))  # newest frame last
        assert np.array_equal(obs[..., :3], frames[-1][..., 1:])  # oldest first: the stack shifts left by one
        frames.append(obs)
    assert not np.array_equal(frames[-1][..., -1], frames[0][..., -1])  # the paddle moved


def test_real_ale_noop_and_fire_reset_with_frameskip():
    base = _ale()
    env = wrap_atari_for_new_api_stack(base, framestack=4)  # frameskip 4: each wrapper step is 4 ALE steps
    env.reset(seed=3)
    noop_steps = base.actions[:-8]
    assert base.actions[-8:] == [1] * 4 + [2] * 4  # FIRE, then action 2, each repeated frameskip times
    assert set(noop_steps) == {0} and len(noop_steps) % 4 == 0 and 1 <= len(noop_steps) // 4 <= 30
    assert len(noop_steps) // 4 == env.get_wrapper_attr("noops_taken")
    assert "FIRE" in base.unwrapped.get_action_meanings()
    pong = _ale("ALE/Pong-v5")
    wrapped = wrap_atari_for_new_api_stack(pong, framestack=4)
    assert "FireResetEnv" in str(wrapped)  # Pong's action meanings include FIRE too
    n = len(base.actions)
    _, reward, *_ = env.step(3)
    assert base.actions[n:] == [3, 3, 3, 3] and reward == sum(base.rewards[n:])  # rewards summed, never clipped


def test_real_ale_episodic_life():
    base = _ale()
    env = wrap_atari_for_new_api_stack(base, framestack=4)
    env.reset(seed=0)
    lives = base.unwrapped.ale.lives()
    assert lives == 5 and base.resets == 1
    for _ in range(2000):  # the paddle stays: the ball is lost within a few hundred steps
        _, _, terminated, truncated, _ = env.step(0)
        if terminated or truncated:
            break
    assert terminated and base.unwrapped.ale.lives() == lives - 1  # a lost life ends the learning episode
    env.reset()
    assert base.resets == 1 and base.unwrapped.ale.lives() == lives - 1  # no real reset after a lost life


def test_atari_ids_build_the_wrapped_env():
    pytest.importorskip("ale_py")
    from jaxrl_modules.envs.registry import make_env

    env = make_env("atari:ALE/Pong-v5", {})
    assert env.observation_space == gym.spaces.Box(-1, 1, (64, 64, 4), np.float32) and env.action_space.n == 6
    assert env.unwrapped._frameskip == 1 and env.unwrapped.spec.kwargs["repeat_action_probability"] == 0.0  # the wrapper skips
    env = make_env("atari:ale_py:ALE/Pong-v5", {"dim": 42, "framestack": 2, "mode": 1})
    assert env.observation_space.shape == (42, 42, 2) and env.reset(seed=0)[0].shape == (42, 42, 2)
    with pytest.raises(ValueError, match="'framestack'.*must be an int >= 1; got 0"):
        make_env("atari:ALE/Pong-v5", {"framestack": 0})
    with pytest.raises(ValueError, match="ALE image env id.*got 'CartPole-v1'"):
        make_env("atari:CartPole-v1", {})
    with pytest.raises(ValueError, match="Unknown Atari game 'ALE/Pongg-v5'"):
        make_env("atari:ALE/Pongg-v5", {})


def test_atari_without_ale_py(monkeypatch):
    import sys

    from jaxrl_modules.envs.registry import make_env

    monkeypatch.setitem(sys.modules, "ale_py", None)  # import ale_py fails, as when it is not installed
    with pytest.raises(ValueError, match=r"pip install 'jaxrl_modules\[atari\]'"):
        make_env("atari:ALE/Pong-v5", {})
