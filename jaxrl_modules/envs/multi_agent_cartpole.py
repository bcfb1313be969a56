"""MultiAgentCartPole: N independent CartPole-v1 envs behind one dict-keyed interface (RLlib's)."""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym


class MultiAgentCartPole:
    """Agent ids are ints `0..N-1`; observations, rewards, terminateds, truncateds are dicts
    keyed by the agents that acted, plus `"__all__"` in the done dicts (true once every agent
    is done). A finished agent must not be stepped again; reset(seed) seeds every copy alike.
    """

    def __init__(self, config: Optional[dict] = None):
        config = dict(config or {})
        unknown = sorted(set(config) - {"num_agents"})
        if unknown:
            raise TypeError(f"MultiAgentCartPole got an unexpected keyword argument {unknown[0]!r} in its config "
                            f"(it accepts only 'num_agents'); got config {config!r}")
        num_agents = config.get("num_agents", 1)
        if not isinstance(num_agents, int) or isinstance(num_agents, bool) or num_agents < 1:
            raise ValueError(f"MultiAgentCartPole config 'num_agents' must be an int >= 1; got {num_agents!r}")
        self.num_agents = num_agents
        self.envs = [gym.make("CartPole-v1") for _ in range(self.num_agents)]
        self.agents = self.possible_agents = list(range(self.num_agents))
        self.observation_spaces = {i: e.observation_space for i, e in enumerate(self.envs)}
        self.action_spaces = {i: e.action_space for i, e in enumerate(self.envs)}
        self.observation_space = None
        self.action_space = None
        self._done: set = set()

    def get_observation_space(self, agent_id: Any) -> gym.Space:
        return self.observation_spaces[agent_id]

    def get_action_space(self, agent_id: Any) -> gym.Space:
        return self.action_spaces[agent_id]

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple[dict, dict]:
        self._done = set()
        obs, infos = {}, {}
        for i, env in enumerate(self.envs):
            obs[i], infos[i] = env.reset(seed=seed, options=options)
        return obs, infos

    def step(self, action_dict: dict) -> tuple[dict, dict, dict, dict, dict]:
        if not action_dict:
            raise ValueError("MultiAgentCartPole.step() needs actions for at least one agent; got {}")
        done_now = [i for i in action_dict if i in self._done]
        if done_now:
            raise ValueError(f"Agents {done_now} are already done; do not step them again before reset()")
        obs, rew, term, trunc, info = {}, {}, {}, {}, {}
        for i, action in action_dict.items():
            obs[i], rew[i], term[i], trunc[i], info[i] = self.envs[i].step(action)
            if term[i] or trunc[i]:
                self._done.add(i)
        term["__all__"] = len(self._done) == self.num_agents
        trunc["__all__"] = all(trunc.get(i, False) for i in self.agents) and term["__all__"]
        return obs, rew, term, trunc, info

    def close(self) -> None:
        for env in self.envs:
            env.close()
