"""`wrap_atari_for_new_api_stack`: RLlib's Atari preprocessing as gymnasium wrappers.

Innermost first: TimeLimit(108000), grayscale + resize to (dim, dim), float normalisation
to [-1, 1), max-and-skip over `frameskip` frames, up to 30 no-op steps on reset, episodic
life, FIRE on reset (when the game has it), and stacking of `framestack` frames. Resizing
uses PIL's area-averaging (BOX) filter, standing in for RLlib's cv2 INTER_AREA. Rewards are
summed over skipped frames and never clipped (as RLlib's new stack). `jaxrl_modules.envs.
registry.make_env("atari:ALE/<Game>-v5", env_config)` (what `jaxrl-modules train --atari` uses)
creates the ALE env as RLlib's examples do and wraps it with `dim=64, framestack=4`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Optional

import gymnasium as gym
import numpy as np


def _action_meanings(env: gym.Env) -> list:
    getter = getattr(env.unwrapped, "get_action_meanings", None)
    return list(getter()) if getter else []


class GrayScaleAndResize(gym.ObservationWrapper):
    """RGB frames -> uint8 `(dim, dim, 1)` (or `(dim, dim, 3)` without grayscale)."""

    def __init__(self, env: gym.Env, dim: int = 64, grayscale: bool = True):
        super().__init__(env)
        self.dim, self.grayscale = dim, grayscale
        self.observation_space = gym.spaces.Box(0, 255, (dim, dim, 1 if grayscale else 3), np.uint8)

    def observation(self, frame: np.ndarray) -> np.ndarray:
        from PIL import Image

        image = Image.fromarray(np.asarray(frame, np.uint8))
        if self.grayscale:
            image = image.convert("L")
        out = np.asarray(image.resize((self.dim, self.dim), Image.BOX), np.uint8)
        return out[..., None] if self.grayscale else out


class NormalizedImageEnv(gym.ObservationWrapper):
    """uint8 frames -> float32 `x / 128 - 1` in [-1, 0.9921875]."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, env.observation_space.shape, np.float32)

    def observation(self, frame: np.ndarray) -> np.ndarray:
        return frame.astype(np.float32) / 128.0 - 1.0


class MaxAndSkipEnv(gym.Wrapper):
    """Repeats the action `skip` times, sums rewards, returns the max of the last two frames."""

    def __init__(self, env: gym.Env, skip: int = 4):
        super().__init__(env)
        self.skip = skip

    def step(self, action: Any) -> tuple:
        total, frames, info = 0.0, deque(maxlen=2), {}
        terminated = truncated = False
        for _ in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            frames.append(obs)
            total += float(reward)
            if terminated or truncated:
                break
        return np.max(np.stack(frames), axis=0), total, terminated, truncated, info


class NoopResetEnv(gym.Wrapper):
    """On reset, takes 1..noop_max NOOP (action 0) steps, resetting again if an episode ends."""

    def __init__(self, env: gym.Env, noop_max: int = 30):
        super().__init__(env)
        self.noop_max = noop_max
        self.noops_taken = 0

    def reset(self, **kwargs: Any) -> tuple:
        obs, info = self.env.reset(**kwargs)
        self.noops_taken = int(self.np_random.integers(1, self.noop_max + 1))
        for _ in range(self.noops_taken):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class EpisodicLifeEnv(gym.Wrapper):
    """Losing a life ends the episode for learning; the next reset is a NOOP step, not a real reset."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives, self.real_done = 0, True

    def _lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())

    def step(self, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.real_done = terminated or truncated
        lives = self._lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple:
        if self.real_done:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, _, _, info = self.env.step(0)
        self.lives = self._lives()
        return obs, info


class FireResetEnv(gym.Wrapper):
    """After reset, steps FIRE (1) then action 2, resetting again if either ends the episode."""

    def reset(self, **kwargs: Any) -> tuple:
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(2)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


class FrameStack(gym.Wrapper):
    """Concatenates the last `k` frames on the channel axis (reset fills k copies)."""

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        self.k, self.frames = k, deque(maxlen=k)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(np.repeat(space.low, k, axis=-1), np.repeat(space.high, k, axis=-1),
                                                space.shape[:-1] + (space.shape[-1] * k,), space.dtype)

    def reset(self, **kwargs: Any) -> tuple:
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.k):
            self.frames.append(obs)
        return np.concatenate(self.frames, axis=-1), info

    def step(self, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(obs)
        return np.concatenate(self.frames, axis=-1), reward, terminated, truncated, info


def wrap_atari_for_new_api_stack(env: gym.Env, dim: int = 64, frameskip: int = 4, framestack: Optional[int] = None,
                                 grayscale: bool = True) -> gym.Env:
    """RLlib's Atari wrapping (see the module docstring); the action space is unchanged.

    Default: `Box(-1, 1, (64, 64, 1), float32)`; framestack=4 gives (64, 64, 4); grayscale=False
    gives 3 channels. Create ALE envs with `frameskip=1, repeat_action_probability=0.0` first so
    this wrapper's skip is the only one (ale-py is the optional extra `jaxrl_modules[atari]`).
    """
    env = gym.wrappers.TimeLimit(env, max_episode_steps=108000)
    env = GrayScaleAndResize(env, dim=dim, grayscale=grayscale)
    env = NormalizedImageEnv(env)
    if frameskip > 1:
        env = MaxAndSkipEnv(env, skip=frameskip)
    env = NoopResetEnv(env, noop_max=30)
    if hasattr(env.unwrapped, "ale"):
        env = EpisodicLifeEnv(env)
    if "FIRE" in _action_meanings(env):
        env = FireResetEnv(env)
    if framestack:
        env = FrameStack(env, framestack)
    return env
