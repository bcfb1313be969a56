"""AlgorithmConfig: RLlib's builder-style configuration, the base of every algorithm config."""

from __future__ import annotations

import copy
import difflib
from typing import Any, Callable, Optional

from jaxrl_modules.columns import DEFAULT_MODULE_ID
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.rl_module_spec import RLModuleSpec

_NOT_PROVIDED = object()


class AlgorithmConfig:
    """Settings grouped as in RLlib: environment, env_runners, rl_module, multi_agent,
    training, evaluation, debugging. Every setter returns `self` for chaining."""

    # Keys added to a dict (or absent) model config, as RLlib's `_model_config_auto_includes`.
    model_config_auto_includes: dict = {}

    def __init__(self) -> None:
        self.env: Any = None
        self.env_config: dict = {}
        self.num_envs_per_env_runner = 1
        self.rollout_fragment_length: Any = "auto"
        self.env_to_module_connector: Optional[Callable] = None
        self.model_config: Any = None
        self.rl_module_spec: Any = None
        self.policies: Any = None
        self.policy_mapping_fn: Optional[Callable] = None
        self.policies_to_train: Any = None
        self.seed = 0
        self.evaluation_duration = 10
        self.gamma = 0.99
        self.lr = 1e-3
        self.train_batch_size = 4000
        self.train_batch_size_per_learner: Optional[int] = None
        self.grad_clip: Optional[float] = None
        self.grad_clip_by = "global_norm"
        self.adam_eps = 1e-8
        self.lr_schedule: Optional[str] = None
        self.total_iterations: Optional[int] = None

    # ----------------------------------------------------------------- builder methods
    def _training_keys(self) -> list[str]:
        return ["gamma", "lr", "train_batch_size", "train_batch_size_per_learner", "grad_clip", "grad_clip_by",
                "adam_eps", "lr_schedule", "total_iterations"]

    def environment(self, env: Any = _NOT_PROVIDED, *, env_config: Optional[dict] = None) -> "AlgorithmConfig":
        if env is not _NOT_PROVIDED:
            self.env = env
        if env_config is not None:
            self.env_config = dict(env_config)
        return self

    def env_runners(self, *, num_envs_per_env_runner: Any = _NOT_PROVIDED, rollout_fragment_length: Any = _NOT_PROVIDED,
                    env_to_module_connector: Any = _NOT_PROVIDED, num_env_runners: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        if num_envs_per_env_runner is not _NOT_PROVIDED:
            if not isinstance(num_envs_per_env_runner, int) or num_envs_per_env_runner < 1:
                raise ValueError(f"num_envs_per_env_runner must be a positive int; got {num_envs_per_env_runner!r}")
            self.num_envs_per_env_runner = num_envs_per_env_runner
        if rollout_fragment_length is not _NOT_PROVIDED:
            self.rollout_fragment_length = rollout_fragment_length
        if env_to_module_connector is not _NOT_PROVIDED:
            self.env_to_module_connector = env_to_module_connector
        return self

    def rl_module(self, *, model_config: Any = _NOT_PROVIDED, rl_module_spec: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        if model_config is not _NOT_PROVIDED:
            if model_config is not None and not isinstance(model_config, (dict, DefaultModelConfig)):
                raise TypeError(f"model_config must be a dict or DefaultModelConfig; got {type(model_config).__name__}")
            self.model_config = model_config
        if rl_module_spec is not _NOT_PROVIDED:
            self.rl_module_spec = rl_module_spec
        return self

    def multi_agent(self, *, policies: Any = _NOT_PROVIDED, policy_mapping_fn: Any = _NOT_PROVIDED,
                    policies_to_train: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        if policies is not _NOT_PROVIDED:
            self.policies = policies
        if policy_mapping_fn is not _NOT_PROVIDED:
            self.policy_mapping_fn = policy_mapping_fn
        if policies_to_train is not _NOT_PROVIDED:
            self.policies_to_train = policies_to_train
        return self

    def training(self, **kwargs: Any) -> "AlgorithmConfig":
        known = self._training_keys()
        for key, value in kwargs.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"Unknown training setting {key!r} for {type(self).__name__}.{hint} "
                                 f"Known settings: {sorted(known)}")
            setattr(self, key, value)
        return self

    def evaluation(self, *, evaluation_duration: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        if evaluation_duration is not _NOT_PROVIDED:
            self.evaluation_duration = int(evaluation_duration)
        return self

    def debugging(self, *, seed: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        if seed is not _NOT_PROVIDED:
            self.seed = int(seed)
        return self

    def api_stack(self, **kwargs: Any) -> "AlgorithmConfig":
        """Accepted and ignored: there is one API stack."""
        return self

    def copy(self) -> "AlgorithmConfig":
        return copy.copy(self)

    def get_algorithm_class(self) -> type:
        raise ValueError(f"{type(self).__name__} has no algorithm; use an algorithm config such as PPOConfig")

    def build(self) -> Any:
        """The Algorithm for this config (a copy of it: later config changes do not leak in)."""
        return self.get_algorithm_class()(self.copy())

    build_algo = build

    # ----------------------------------------------------------------- derived settings
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        raise NotImplementedError

    def get_default_learner_class(self) -> type:
        raise NotImplementedError

    @property
    def is_multi_agent(self) -> bool:
        from jaxrl_modules.multi_rl_module import MultiRLModuleSpec

        return self.policies is not None or isinstance(self.rl_module_spec, MultiRLModuleSpec)

    def batch_size(self) -> int:
        return int(self.train_batch_size_per_learner or self.train_batch_size)

    def rollout_length(self) -> int:
        """Steps per env per iteration: `rollout_fragment_length`, or "auto" = batch / num_envs."""
        if self.rollout_fragment_length == "auto":
            return max(1, self.batch_size() // self.num_envs_per_env_runner)
        return int(self.rollout_fragment_length)

    def merged_model_config(self, spec_config: Any = None) -> Any:
        """RLlib's rule: auto-includes | config model_config | spec model_config; a
        DefaultModelConfig object keeps its own values (vf_share_layers=True unless set)."""
        base = spec_config if spec_config is not None else self.model_config
        if isinstance(base, DefaultModelConfig):
            return base
        merged = dict(self.model_config_auto_includes)
        if isinstance(self.model_config, dict):
            merged.update(self.model_config)
        if isinstance(spec_config, dict):
            merged.update(spec_config)
        return merged

    def module_spec_for(self, observation_space: Any, action_space: Any) -> RLModuleSpec:
        """The single-agent module spec, spaces filled in from the env (after the connector)."""
        user = self.rl_module_spec
        from jaxrl_modules.multi_rl_module import MultiRLModuleSpec

        if isinstance(user, MultiRLModuleSpec):
            user = None  # the multi-agent setup fills its sub-specs itself
        if user is not None and not isinstance(user, RLModuleSpec):
            raise TypeError(f"rl_module_spec must be an RLModuleSpec or MultiRLModuleSpec; got {type(user).__name__}")
        spec = self.get_default_rl_module_spec()
        if user is not None:
            spec = RLModuleSpec(user.module_class or spec.module_class, user.observation_space, user.action_space,
                                user.inference_only, user.learner_only, user.model_config, user.load_state_path)
        spec.observation_space = spec.observation_space or observation_space
        spec.action_space = spec.action_space or action_space
        spec.model_config = self.merged_model_config(spec.model_config)
        return spec

    def policy_ids(self) -> list[str]:
        if self.policies is None:
            return [DEFAULT_MODULE_ID]
        return sorted(self.policies) if not isinstance(self.policies, dict) else list(self.policies)
