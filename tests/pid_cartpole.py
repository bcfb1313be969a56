"""A CartPole whose info names the process stepping it (tests/test_num_env_runners.py). A module of
its own, importing no JAX, so env worker processes that unpickle it start quickly."""

import os

import gymnasium as gym


class PidCartPole(gym.Wrapper):
    def __init__(self, env_config=None):
        super().__init__(gym.make("CartPole-v1"))

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "pid": os.getpid()}

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        return obs, reward, term, trunc, {**info, "pid": os.getpid()}
