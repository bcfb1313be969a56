"""The MultiRLModuleSpec of a multi-agent config: one sub-spec per ModuleID with the env's spaces
filled in (RLlib's `multi_agent(policies=...)` and custom MultiRLModuleSpecs), for every loop that
trains a MultiRLModule (the multi-agent host loop, JaxMARL envs in one jit)."""

from __future__ import annotations

from typing import Any

from jaxrl_modules.multi_rl_module import MultiRLModule, MultiRLModuleSpec


def multi_spec(config: Any, obs_space: Any, act_space: Any) -> MultiRLModuleSpec:
    """Sub-specs with spaces filled in: observation spaces everywhere, action spaces for
    the policies (`multi_agent(policies=...)`, else the specs that name one, else all)."""
    cfg = config
    user = cfg.rl_module_spec
    if isinstance(user, MultiRLModuleSpec) and not isinstance(user.rl_module_specs, dict):
        # One spec shared by every ModuleID: one module per listed policy, else one default_policy.
        specs, cls = {mid: user.rl_module_specs for mid in cfg.policy_ids()}, user.multi_rl_module_class
    elif isinstance(user, MultiRLModuleSpec):
        specs, cls = user.module_specs(), user.multi_rl_module_class
    else:
        specs, cls = {mid: user for mid in cfg.policy_ids()}, MultiRLModule
    if cfg.policies is not None:
        missing = [m for m in cfg.policy_ids() if m not in specs]
        if missing:
            raise ValueError(f"policies {missing} have no spec in the MultiRLModuleSpec (it has {sorted(specs)})")
        policies = cfg.policy_ids()
    else:
        policies = [m for m, s in specs.items() if s is not None and s.action_space is not None] or list(specs)
    filled = {}
    for mid, spec in specs.items():
        base = cfg.module_spec_for(obs_space, act_space if mid in policies else None)
        if spec is not None:
            base.module_class = spec.module_class or base.module_class
            base.observation_space = spec.observation_space or obs_space
            base.action_space = spec.action_space or (act_space if mid in policies else None)
            base.model_config = cfg.merged_model_config(spec.model_config)
            base.inference_only = spec.inference_only
        filled[mid] = base
    return MultiRLModuleSpec(multi_rl_module_class=cls, rl_module_specs=filled)


def resolve_mapping(config: Any, agents: list) -> dict:
    """`{agent_id: module_id}` from `policy_mapping_fn(agent_id, episode)` (episode 0: resolved once, for an
    env whose agents are fixed); every ModuleID must be one of the config's policies."""
    from jaxrl_modules.algorithms.multi_agent_env_runner import _check_mapping_signature
    from jaxrl_modules.columns import DEFAULT_MODULE_ID

    fn = config.policy_mapping_fn or (lambda agent_id, episode, **kw: DEFAULT_MODULE_ID)
    _check_mapping_signature(fn)
    mapping = {a: fn(a, 0) for a in agents}
    policies = config.policy_ids()
    unknown = sorted({str(m) for m in mapping.values() if m not in policies})
    if unknown:
        raise ValueError(f"policy_mapping_fn returned unknown ModuleID(s) {unknown} for agents {agents}; expected one of "
                         f"the policies {policies}")
    from jaxrl_modules.algorithms.algorithm_config import check_policies_to_train

    trained = check_policies_to_train(getattr(config, "policies_to_train", None), policies)
    unmapped = [m for m in policies if m in trained and m not in mapping.values()]
    if unmapped:
        raise ValueError(f"policies {unmapped} are trained but no agent maps to them (policy_mapping_fn gives "
                         f"{mapping}), so they would train on nothing; expected every trained policy to have an agent: "
                         "map one to it, or leave it out of policies / policies_to_train")
    return mapping


def reads_global_state(config: Any) -> bool:
    """Whether the config's modules read the env's global state (a module class with
    `reads_global_state = True`, such as MAPPO's centralised-critic module): all of them or none, since
    every row's observation then is the Dict `{"obs", "global_state"}`."""
    user = config.rl_module_spec
    if isinstance(user, MultiRLModuleSpec):
        specs = user.rl_module_specs if isinstance(user.rl_module_specs, dict) else {"*": user.rl_module_specs}
    else:
        specs = {"*": user}
    flags = {mid: bool(getattr(getattr(s, "module_class", None), "reads_global_state", False))
             for mid, s in specs.items() if s is not None}
    if len(set(flags.values())) > 1:
        raise ValueError(f"either every module reads the global state or none does (their rows share one observation "
                         f"layout); got reads_global_state {flags}")
    return any(flags.values())
