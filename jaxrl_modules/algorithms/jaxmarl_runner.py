"""Sampling from JaxMARL multi-agent envs as pure functions (a `runner.JaxRunner`), for training fully
inside `jax.jit` (issue 12).

Every agent of every env is one batch row: `num_envs` vmapped envs of A agents give `[num_envs * A]`
rows per step (row `env * A + agent`: the agents of one env are contiguous). Agents act through the MultiRLModule's policies by a
mapping resolved once from the env's agent ids; without `multi_agent()` every agent maps to one shared
`default_policy` (JaxMARL's IPPO default). Each policy acts on its agents' rows (gathered by static
indices when every policy has as many agents; else on all rows, each row taking the action of its
agent's policy), so shapes are fixed whatever the mapping and identical policies act and train stacked
as one vmapped computation. Each policy's trajectory `[T, rows, ...]` carries a LOSS_MASK of the rows of
its agents that were alive when they acted: agents that are done before the others (SMAX units dying)
leave the loss. An episode's return is the sum over its agents (RLlib's multi-agent definition);
a module's, the sum over the agents mapped to it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.columns import Columns

JAXMARL_PREFIX = "jaxmarl:"
OWN_OBS, GLOBAL_STATE = "obs", "global_state"  # the Dict observation of a module that reads the global state
SMAX_ENVS = ("SMAX", "HeuristicEnemySMAX", "LearnedPolicyEnemySMAX")


def is_jaxmarl(env: Any) -> bool:
    return isinstance(env, str) and env.startswith(JAXMARL_PREFIX)


def _accepted_kwargs(cls: type) -> set:
    """The keyword arguments a JaxMARL env class's constructor chain names: its `__init__`s along the MRO,
    and SMAX's for the SMAX wrappers (which pass `**kwargs` on to the SMAX they hold)."""
    import inspect

    names: set = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    if cls.__name__ in SMAX_ENVS[1:]:
        from jaxmarl.environments.smax import SMAX

        names |= _accepted_kwargs(SMAX)
    return names


def make_jaxmarl(env: str, env_config: Optional[dict] = None) -> Any:
    """The JaxMARL env of `"jaxmarl:<name>"` (`jaxmarl.make(name, **env_config)`); jaxmarl is imported
    only here. An unknown name is a ValueError listing close registered names; an env_config key the env's
    constructors do not name is an `EnvConfigError` (JaxMARL's constructors swallow unknown keywords, so a
    typo would otherwise be ignored). A SMAX `scenario` may be a SMAC map name (`"3m"`, `"2s3z"`)."""
    import difflib

    import jaxmarl

    from jaxrl_modules.envs.registry import EnvConfigError, _env_config_error

    name = env[len(JAXMARL_PREFIX):]
    if name not in jaxmarl.registered_envs:
        close = difflib.get_close_matches(name, jaxmarl.registered_envs, n=3)
        raise ValueError(f"Unknown JaxMARL environment {name!r}; expected one of jaxmarl.registered_envs"
                         f"{' such as ' + str(close) if close else ''}")
    if env_config is not None and not isinstance(env_config, dict):
        raise TypeError(f"env_config of {env!r} must be a dict of jaxmarl.make keyword arguments; got "
                        f"{type(env_config).__name__} {env_config!r}")
    kwargs = dict(env_config or {})
    if name in SMAX_ENVS and isinstance(kwargs.get("scenario"), str):
        from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

        if kwargs["scenario"] not in MAP_NAME_TO_SCENARIO:
            raise ValueError(f"env_config['scenario'] of {env!r} must be a SMAC map name, one of "
                             f"{sorted(MAP_NAME_TO_SCENARIO)}; got {kwargs['scenario']!r}")
        kwargs["scenario"] = MAP_NAME_TO_SCENARIO[kwargs["scenario"]]
    try:
        made = jaxmarl.make(name, **kwargs)
    except TypeError as err:  # a constructor without **kwargs: "unexpected keyword argument"
        _env_config_error(env, env_config, err)
    accepted = _accepted_kwargs(type(made))
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        close = {k: difflib.get_close_matches(k, sorted(accepted), n=1) for k in unknown}
        hint = "; ".join(f"{k!r}: did you mean {c[0]!r}?" for k, c in close.items() if c)
        raise EnvConfigError(f"env_config {env_config!r} does not fit environment {env!r}: its constructor takes no keyword "
                             f"argument(s) {unknown}; expected some of {sorted(accepted)}{' (' + hint + ')' if hint else ''}",
                             unknown[0], env)
    return made


def to_gymnasium(space: Any) -> gym.Space:
    """A JaxMARL Box/Discrete space as a gymnasium space."""
    from jaxmarl.environments import spaces

    if isinstance(space, spaces.Discrete):
        return gym.spaces.Discrete(int(space.n))
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return gym.spaces.Box(low, high, shape, np.float32)
    raise ValueError(f"Unsupported JaxMARL space {space!r}: expected a Box or Discrete space")


class MarlRunnerState(NamedTuple):
    obs: Any  # [num_envs * A, ...] rows, env-major (a Dict {obs, global_state} for a module that reads the global state)
    env_state: Any
    agent_return: jax.Array  # [num_envs * A]: each agent's return so far in its episode
    alive: jax.Array  # [num_envs * A] bool: the agent is not done (JaxMARL's per-agent dones)


class JaxMarlRunner:
    """`num_envs` copies of a JaxMARL env (auto-resetting), vmapped, every agent acting through the policy
    `mapping[agent]` names. Configuration only: everything a rollout changes is in `MarlRunnerState`.

    When every policy has as many agents as the others (one shared policy, one policy per agent, any
    balanced mapping), each policy acts and learns on its own agents' rows only (`num_rows` per env step:
    envs x its agents), gathered by static indices, so N per-agent policies cost what one shared policy
    does; otherwise every policy acts on all rows and LOSS_MASK keeps its agents' (fixed shapes still).

    `global_state=True` gives every row the Dict observation `{"obs": own, "global_state": env's}`, the
    global state being the env's `world_state` observation where it has one (SMAX), else the concatenation
    of all agents' observations (MPE): what a centralised critic (MAPPO) reads."""

    def __init__(self, env: Any, num_envs: int, mapping: dict, module_ids: Optional[list] = None,
                 global_state: bool = False):
        self.env, self.num_envs = env, int(num_envs)
        self.agents = list(env.agents)
        self.num_agents = len(self.agents)
        self.mapping = dict(mapping)
        self.module_ids = list(module_ids) if module_ids is not None else sorted(set(self.mapping.values()))
        self.global_state = bool(global_state)
        missing = [a for a in self.agents if a not in self.mapping]
        unknown = sorted({str(m) for m in self.mapping.values() if m not in self.module_ids})
        if missing or unknown:
            raise ValueError(f"the agent-to-module mapping {self.mapping} must map every agent of the env {self.agents} to "
                             f"one of the modules {self.module_ids}; agents missing: {missing}, unknown modules: {unknown}")
        self.agent_index = {mid: [j for j, a in enumerate(self.agents) if self.mapping[a] == mid] for mid in self.module_ids}
        counts = {len(ix) for ix in self.agent_index.values()}
        self.gathered = len(counts) == 1 and 0 not in counts  # each policy's own rows only (equal shapes)
        self.num_rows = self.num_envs * (counts.pop() if self.gathered else self.num_agents)  # a policy's rows per step
        spaces = {a: (to_gymnasium(env.observation_space(a)), to_gymnasium(env.action_space(a))) for a in self.agents}
        first = spaces[self.agents[0]]
        different = [a for a, s in spaces.items() if s != first]
        if different:
            raise ValueError(f"every agent's observation and action spaces must be equal (their rows form one batch); "
                             f"agents {different} differ from {self.agents[0]!r} ({first})")
        self.observation_space, self.action_space = first
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError(f"JaxMARL envs with {type(self.action_space).__name__} action spaces are not supported yet; "
                             f"expected Discrete actions, as in MPE, SMAX and Overcooked; got {self.action_space}")
        if self.global_state:
            with jax.numpy_rank_promotion("allow"):  # JaxMARL's own code broadcasts implicitly
                shapes = jax.eval_shape(env.reset, jax.random.key(0))[0]
            size = (shapes["world_state"].shape[-1] if "world_state" in shapes
                    else sum(int(np.prod(shapes[a].shape)) for a in self.agents))
            self.observation_space = gym.spaces.Dict({
                OWN_OBS: self.observation_space,
                GLOBAL_STATE: gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)})
        self.obs_fn: Callable = lambda x: x  # noqa: E731

    def module_masks(self) -> dict:
        """`{module_id: [num_envs * A] bool}`: the rows whose agent maps to the module."""
        per_agent = {mid: jnp.asarray([self.mapping[a] == mid for a in self.agents]) for mid in self.module_ids}
        return {mid: jnp.tile(m, self.num_envs) for mid, m in per_agent.items()}

    def take(self, rows: Any, mid: str) -> Any:
        """The rows (`[num_envs * A, ...]` leaves) of the policy `mid` acts and learns on: its agents' when
        `gathered` (static indices; all of them for one shared policy), else all."""
        ix = self.agent_index[mid]
        if not self.gathered or len(ix) == self.num_agents:
            return rows
        E, A, n = self.num_envs, self.num_agents, len(ix)
        return jax.tree_util.tree_map(lambda x: x.reshape((E, A) + x.shape[1:])[:, np.asarray(ix)]
                                      .reshape((E * n,) + x.shape[1:]), rows)

    def module_batch(self, obs: Any) -> dict:
        """Every policy's forward batch: its rows (`take`)."""
        return {mid: {Columns.OBS: self.take(obs, mid)} for mid in self.module_ids}

    def combined_actions(self, out: dict) -> jax.Array:
        """Each row's action: that of the policy its agent maps to."""
        if len(self.module_ids) == 1:
            return out[self.module_ids[0]][Columns.ACTIONS]
        if not self.gathered:
            masks = self.module_masks()
            return sum(jnp.where(masks[mid], out[mid][Columns.ACTIONS], 0) for mid in self.module_ids)
        first = out[self.module_ids[0]][Columns.ACTIONS]
        actions = jnp.zeros((self.num_envs, self.num_agents) + first.shape[1:], first.dtype)
        for mid in self.module_ids:
            ix = np.asarray(self.agent_index[mid])
            actions = actions.at[:, ix].set(out[mid][Columns.ACTIONS].reshape((self.num_envs, len(ix)) + first.shape[1:]))
        return actions.reshape((self.num_envs * self.num_agents,) + first.shape[1:])

    def last_obs(self, state: MarlRunnerState) -> dict:
        """Every policy's observation rows after a rollout, what learners bootstrap from."""
        obs = self.obs_fn(state.obs)
        return {mid: self.take(obs, mid) for mid in self.module_ids}

    def _rows(self, per_agent: dict) -> jax.Array:
        """`{agent: [num_envs, ...]}` -> `[num_envs * A, ...]` (row `env * A + agent`)."""
        stacked = jnp.stack([per_agent[a] for a in self.agents], axis=1)
        return stacked.reshape((self.num_envs * self.num_agents,) + stacked.shape[2:])

    def _obs_rows(self, obs: dict) -> Any:
        """The env's observation dict as rows (with the global state, repeated per agent, if asked for)."""
        own = self._rows(obs)
        if not self.global_state:
            return own
        state = obs["world_state"] if "world_state" in obs else jnp.concatenate(
            [obs[a].reshape(self.num_envs, -1) for a in self.agents], axis=-1)
        return {OWN_OBS: own, GLOBAL_STATE: jnp.repeat(state, self.num_agents, axis=0)}

    def _env_step(self, keys: jax.Array, env_state: Any, acted: jax.Array) -> tuple:
        actions = acted.reshape((self.num_envs, self.num_agents) + acted.shape[1:])
        with jax.numpy_rank_promotion("allow"):  # JaxMARL's own code broadcasts implicitly
            return jax.vmap(self.env.step)(keys, env_state, {a: actions[:, j] for j, a in enumerate(self.agents)})

    def reset(self, rng: jax.Array, initial_state: Any = None) -> MarlRunnerState:
        if initial_state:
            raise ValueError("JaxMARL envs train stateless modules only so far; expected use_lstm=False")
        with jax.numpy_rank_promotion("allow"):  # JaxMARL's own code broadcasts implicitly
            obs, env_state = jax.vmap(self.env.reset)(jax.random.split(rng, self.num_envs))
        rows = self.num_envs * self.num_agents
        return MarlRunnerState(self._obs_rows(obs), env_state, jnp.zeros(rows), jnp.ones(rows, bool))

    def rollout(self, act_fn: Callable, params: Any, state: MarlRunnerState, rng: jax.Array, steps: int,
                t0: Any = None) -> tuple:
        """`steps` env steps of every env: `(state, {module_id: traj [T, num_rows, ...]}, stats)`.
        TERMINATEDS is each agent's done or its env's episode end (JaxMARL resets in the same step, so nothing is
        bootstrapped);
        LOSS_MASK is "mapped to the module and alive when acting". stats: the team and per-module sums of
        the returns of the episodes that ended, and their count."""
        E, A = self.num_envs, self.num_agents
        masks = self.module_masks()

        def step(state: MarlRunnerState, x):
            key, i = x
            k_act, k_env = jax.random.split(key)
            obs_in = self.obs_fn(state.obs)  # the connector's view, if one is set
            kw = {} if t0 is None else {"t": t0 + i * E}
            out = act_fn(params, self.module_batch(obs_in), k_act, **kw)
            acted = self.combined_actions(out)
            obs, env_state, reward, done, _ = self._env_step(jax.random.split(k_env, E), state.env_state, acted)
            reward_rows, done_rows = self._rows(reward), self._rows(done)
            ended = jnp.repeat(done["__all__"], A)  # per row: its env's episode ended (and was reset)
            ret = state.agent_return + reward_rows
            # an agent's own done (SMAX: the unit died) or its env's episode over (SMAX survivors of a won or
            # timed-out episode are not "done" themselves, but the env resets): GAE must not run across it
            common = {Columns.OBS: obs_in, Columns.ACTIONS: acted, Columns.REWARDS: reward_rows,
                      Columns.TERMINATEDS: done_rows | ended, Columns.TRUNCATEDS: jnp.zeros(E * A, bool)}
            rec = {mid: {**self.take({**common, Columns.LOSS_MASK: masks[mid] & state.alive}, mid),
                         Columns.ACTION_LOGP: out[mid][Columns.ACTION_LOGP],
                         Columns.ACTION_DIST_INPUTS: out[mid][Columns.ACTION_DIST_INPUTS]} for mid in self.module_ids}
            ended_ret = jnp.where(ended, ret, 0.0)
            sums = {mid: jnp.where(masks[mid], ended_ret, 0.0).sum() if self.agent_index[mid] else jnp.nan
                    for mid in self.module_ids}  # NaN for a policy no agent maps to (frozen), as the host loop
            new = MarlRunnerState(self._obs_rows(obs), env_state, jnp.where(ended, 0.0, ret), ended | ~done_rows)
            return new, (rec, {"team": ended_ret.sum(), "modules": sums, "episodes": done["__all__"].sum()})

        keys, idx = jax.random.split(rng, steps), jnp.arange(steps, dtype=jnp.int32)
        state, (traj, ends) = jax.lax.scan(step, state, (keys, idx))
        stats = {"return_sum": ends["team"].sum(), "episodes": ends["episodes"].sum(),
                 "module_return_sum": {mid: x.sum() for mid, x in ends["modules"].items()}}
        return state, traj, stats

    def evaluate(self, act: Callable, params: Any, episodes: int, seed: int = 10_000, cache: Optional[dict] = None,
                 max_steps: int = 100_000) -> list[float]:
        """Team returns (summed over agents) of `episodes` complete episodes, one per vmapped env, every
        agent acting through `act(params, {module_id: batch}, rng)` (a MultiRLModule's forward_inference
        phase function: deterministic); one jitted while-loop, cached per `episodes` in `cache`. A
        ValueError when an episode has not ended within `max_steps` steps."""
        cache = {} if cache is None else cache
        if episodes not in cache:
            runner = JaxMarlRunner(self.env, episodes, self.mapping, self.module_ids, self.global_state)
            runner.obs_fn = self.obs_fn

            def run(p: Any, rng: jax.Array) -> tuple:
                k_reset, k_run = jax.random.split(rng)
                state = runner.reset(k_reset)
                zeros, done0 = jnp.zeros(episodes), jnp.zeros(episodes, bool)

                def body(carry):
                    state, returns, done, t = carry
                    k_act, k_env = jax.random.split(jax.random.fold_in(k_run, t))
                    acted = runner.combined_actions(act(p, runner.module_batch(runner.obs_fn(state.obs)), k_act))
                    keys = jax.random.split(k_env, episodes)
                    obs, env_state, reward, env_done, _ = runner._env_step(keys, state.env_state, acted)
                    team = jnp.stack([reward[a] for a in runner.agents], axis=1).sum(axis=1)
                    returns = returns + jnp.where(done, 0.0, team)
                    state = state._replace(obs=runner._obs_rows(obs), env_state=env_state)
                    return state, returns, done | env_done["__all__"], t + 1

                _, returns, done, _ = jax.lax.while_loop(lambda c: ~c[2].all() & (c[3] < max_steps), body,
                                                         (state, zeros, done0, jnp.zeros((), jnp.int32)))
                return returns, done

            cache[episodes] = jax.jit(run)
        returns, done = jax.device_get(cache[episodes](params, jax.random.key(seed)))
        if not done.all():
            raise ValueError(f"{int((~done).sum())} of {episodes} evaluation episodes did not end within {max_steps} "
                             "steps; expected episodes that end")
        return [float(r) for r in returns]
