"""AlgorithmConfig: RLlib's builder-style configuration, the base of every algorithm config."""

from __future__ import annotations

import copy
import difflib
from typing import Any, Callable, Optional

from jaxrl_modules import validation as v
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
        self.normalize_actions = True  # RLlib's defaults: the module acts in [-1, 1] on bounded Boxes
        self.clip_actions = False
        self.num_envs_per_env_runner = 1
        self.num_learners: Any = 0  # RLlib's default: one learner (on the default device)
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

    # ----------------------------------------------------------------- value checks
    def settings_table(self) -> dict[str, v.Check]:
        """Setting -> validator (see `validation.py`). Every setter checks the values it is given
        through this table; `validate()` (called by `build()`/`build_train_fn()`) re-checks all
        of them, since attributes may also be assigned directly."""
        from jaxrl_modules.multi_rl_module import MultiRLModuleSpec

        return {
            "env_config": v.instance_of(dict, allow_none=False, what="a dict"),
            "normalize_actions": v.boolean(),
            "clip_actions": v.boolean(),
            "num_envs_per_env_runner": v.positive_int,
            "rollout_fragment_length": v.literal_or("auto", v.positive_int),
            "env_to_module_connector": v.callable_or_none(),
            "num_env_runners": v.nonnegative_int,
            "num_learners": v.literal_or("auto", v.nonnegative_int),
            "model_config": v.instance_of(dict, DefaultModelConfig, what="a dict or DefaultModelConfig"),
            "rl_module_spec": v.instance_of(RLModuleSpec, MultiRLModuleSpec),
            "policies": _policies_check(),
            "policy_mapping_fn": v.callable_or_none(),
            "policies_to_train": _policies_to_train_check(),
            "seed": v.seed_int,
            "evaluation_duration": v.positive_int,
            "gamma": v.unit_interval,
            "lr": v.positive_float,
            "train_batch_size": v.positive_int,
            "train_batch_size_per_learner": v.optional(v.positive_int),
            "grad_clip": v.optional(v.positive_float),
            "grad_clip_by": v.one_of("value", "norm", "global_norm"),
            "adam_eps": v.positive_float,
            "lr_schedule": v.none_only(f"None: lr_schedule is supported by PPO only, not {type(self).__name__}"),
            "total_iterations": v.optional(v.positive_int),
        }

    def _set(self, **values: Any) -> None:
        """Checks each value through `settings_table()` (normalising shorthands) and sets it."""
        table = self.settings_table()
        for key, value in values.items():
            setattr(self, key, table[key](key, value) if key in table else value)

    def validate(self) -> None:
        """Re-checks every setting by value, then the rules that tie settings together; raises a
        ValueError/TypeError naming the setting, the allowed range and the value received."""
        table = self.settings_table()
        for key, check in table.items():
            if key in self.__dict__:
                setattr(self, key, check(key, getattr(self, key)))
        self._validate_together()

    def _validate_together(self) -> None:
        if self.lr_schedule is not None and self.total_iterations is None:
            raise ValueError(
                f"lr_schedule={self.lr_schedule!r} needs the total number of training iterations, and none is known: "
                "set training(total_iterations=N) (build_train_fn(num_iterations) and the command line's "
                "--iterations set it for you); got total_iterations=None")
        known = self.known_module_ids()
        if known is not None:
            check_policies_to_train(self.policies_to_train, known)
        self._refuse_settings_without_effect()
        self._validate_default_model_config()

    def settings_without_effect(self) -> dict[str, tuple[tuple, str]]:
        """`{setting: (accepted values, why)}`: settings this config accepts (RLlib's names, shared by
        every algorithm) that its algorithm has no use for in this setup. `validate()` refuses any other
        value with a ValueError naming the setting, what is accepted and why, rather than ignoring it.

        Decided from what the config itself holds: an offline config (one reading recorded transitions,
        `input_`: BC) samples no env steps for training; an off-policy config (`replay_buffer_config`:
        DQN, SAC) steps its gymnasium envs one step per update; only a learner declaring
        `supports_multi_agent` (PPO's) trains several modules; only a config whose `lr_schedule` takes
        "linear" (PPO's) reads `total_iterations`. Algorithm configs may extend this."""
        from jaxrl_modules.envs.registry import is_gymnax

        name = type(self).__name__
        out: dict[str, tuple[tuple, str]] = {}
        try:
            learner_cls = self.get_default_learner_class()
        except NotImplementedError:
            learner_cls = None
        if learner_cls is not None and not getattr(learner_cls, "supports_multi_agent", False):
            why = f"{name}'s algorithm trains one single-agent module (multi-agent training is PPO's)"
            out["policies"] = ((None,), why)
            out["policy_mapping_fn"] = ((None,), why)
        if "input_" in self.__dict__:  # offline: trains on recorded transitions, steps no env to train
            why = f"{name} trains on the recorded transitions of input_ and samples no env steps"
            out["rollout_fragment_length"] = (("auto",), why)
            out["num_envs_per_env_runner"] = ((1,), why + " (evaluate() steps one env)")
            out["env_to_module_connector"] = ((None,), why + "; its module takes the recorded observations as they are")
            out["gamma"] = ((0.99,), f"{name} clones the recorded actions: there is no return to discount")
            out["num_env_runners"] = ((0,), why + " (evaluate() steps its env in this process)")
        if "replay_buffer_config" in self.__dict__ and self.env is not None and not is_gymnax(self.env):
            out["rollout_fragment_length"] = ((1, "auto"), f"{name}'s loop over gymnasium envs steps every env once "
                                              "per update (rollout_fragment_length is read by the gymnax loop)")
        if "replay_buffer_config" in self.__dict__ and self.env is not None and is_gymnax(self.env):
            out["env_to_module_connector"] = ((None,), f"{name}'s all-in-jit gymnax loop feeds the env's observations "
                                              "to the module as they are (connectors run in the gymnasium loop)")
        try:
            self.settings_table()["lr_schedule"]("lr_schedule", "linear")
        except (TypeError, ValueError):
            out["total_iterations"] = ((None,), f"total_iterations is the length of lr_schedule, which {name} does "
                                       "not support")
        return out

    def _refuse_settings_without_effect(self) -> None:
        from jaxrl_modules.multi_rl_module import MultiRLModuleSpec

        without = self.settings_without_effect()
        if "policies" in without and isinstance(self.rl_module_spec, MultiRLModuleSpec):
            v.fail("rl_module_spec", f"None or an RLModuleSpec ({without['policies'][1]})", self.rl_module_spec)
        for key, (accepted, why) in without.items():
            value = getattr(self, key, accepted[0])
            if not any(v._same_kind(value, a) and value == a if a is not None else value is None for a in accepted):
                shown = " or ".join(repr(a) for a in accepted)
                v.fail(key, f"{shown} ({why})", value)

    def _check_minibatch_size(self) -> None:
        """`minibatch_size` (PPO, BC) is at most the train batch size per learner, as RLlib requires."""
        batch = self.batch_size()
        if self.minibatch_size > batch:
            v.fail("minibatch_size", f"an int in [1, {batch}] (at most the train batch size per learner, {batch})",
                   self.minibatch_size)

    def _validate_default_model_config(self) -> None:
        """A model config for this algorithm's default module: every key a known one, every value valid
        for the module's `model_config_class`, and the fields the module does not read (its
        `unused_model_fields`) at their defaults."""
        from jaxrl_modules.multi_rl_module import MultiRLModuleSpec

        if isinstance(self.rl_module_spec, MultiRLModuleSpec) or self.policies is not None:
            return  # each sub-module checks its own config when it builds
        default_cls = self.get_default_rl_module_spec().module_class
        user = self.rl_module_spec
        module_cls = (user.module_class if user is not None else None) or default_cls
        if module_cls is not default_cls:
            return  # custom modules may read any keys from their model_config
        from jaxrl_modules.models import refuse_unused_model_fields

        merged = self.merged_model_config(user.model_config if user is not None else None)
        # The module's own typed config checks every key and value (DQN's epsilon, SAC's twin_q, ...); the
        # module parses its model_config the same way, once, when it is built.
        config_cls = getattr(module_cls, "model_config_class", None) or DefaultModelConfig
        typed = config_cls.from_any(merged)
        refuse_unused_model_fields(typed, module_cls)  # e.g. vf_share_layers for DQN, SAC and BC

    # ----------------------------------------------------------------- builder methods
    def _training_keys(self) -> list[str]:
        return ["gamma", "lr", "train_batch_size", "train_batch_size_per_learner", "grad_clip", "grad_clip_by",
                "adam_eps", "lr_schedule", "total_iterations"]

    def environment(self, env: Any = _NOT_PROVIDED, *, env_config: Optional[dict] = None,
                    normalize_actions: Any = _NOT_PROVIDED, clip_actions: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        """`normalize_actions` (default True): the env receives the module's [-1, 1] actions mapped
        to each bounded Box's [low, high]; `clip_actions` (default False): when not normalizing,
        Box actions are clipped to the bounds (see `algorithms/action_transform.py`)."""
        if env is not _NOT_PROVIDED:
            self.env = env
        if env_config is not None:
            self._set(env_config=env_config)
            self.env_config = dict(env_config)
        if normalize_actions is not _NOT_PROVIDED:
            self._set(normalize_actions=normalize_actions)
        if clip_actions is not _NOT_PROVIDED:
            self._set(clip_actions=clip_actions)
        return self

    def env_runners(self, *, num_envs_per_env_runner: Any = _NOT_PROVIDED, rollout_fragment_length: Any = _NOT_PROVIDED,
                    env_to_module_connector: Any = _NOT_PROVIDED, num_env_runners: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        """`num_env_runners` (an int >= 0, default 0): the single-agent gymnasium host loops (PPO, DQN, SAC)
        step `max(1, num_env_runners) * num_envs_per_env_runner` envs, each in a worker process when it is
        >= 1 (gymnasium's AsyncVectorEnv); 0 steps them in this process. A "auto" rollout_fragment_length
        keeps the train batch (it is split over all those envs). The gymnax (all-in-jit) and multi-agent
        loops reject num_env_runners > 0 when they build: use num_envs_per_env_runner in the gymnax loops (the
        multi-agent loop steps one env: it refuses num_envs_per_env_runner != 1)."""
        given = dict(num_envs_per_env_runner=num_envs_per_env_runner, rollout_fragment_length=rollout_fragment_length,
                     env_to_module_connector=env_to_module_connector, num_env_runners=num_env_runners)
        self._set(**{k: val for k, val in given.items() if val is not _NOT_PROVIDED})
        return self

    def learners(self, *, num_learners: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        """`num_learners` (an int >= 0 or "auto", default 0): data-parallel training over that many of JAX's
        devices (`jax.sharding.Mesh`; "auto": all of them, every process's after `jax.distributed.initialize`;
        0 and 1: one). Params and optimizer state are replicated, each batch is split along its rows and the
        gradients are averaged across devices inside the compiled update (`algorithms/data_parallel.py`).
        As in RLlib, `train_batch_size_per_learner` (default `train_batch_size // num_learners`) and
        `minibatch_size` are per learner: the global batch is per-learner x num_learners."""
        if num_learners is not _NOT_PROVIDED:
            self._set(num_learners=num_learners)
        return self

    def rl_module(self, *, model_config: Any = _NOT_PROVIDED, rl_module_spec: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        if model_config is not _NOT_PROVIDED:
            self._set(model_config=model_config)
        if rl_module_spec is not _NOT_PROVIDED:
            self._set(rl_module_spec=rl_module_spec)
        return self

    def multi_agent(self, *, policies: Any = _NOT_PROVIDED, policy_mapping_fn: Any = _NOT_PROVIDED,
                    policies_to_train: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        given = dict(policies=policies, policy_mapping_fn=policy_mapping_fn, policies_to_train=policies_to_train)
        self._set(**{k: val for k, val in given.items() if val is not _NOT_PROVIDED})
        return self

    def training(self, **kwargs: Any) -> "AlgorithmConfig":
        known = self._training_keys()
        for key, value in kwargs.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"Unknown training setting {key!r} for {type(self).__name__}.{hint} "
                                 f"Known settings: {sorted(known)}")
        self._set(**kwargs)
        return self

    def evaluation(self, *, evaluation_duration: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        if evaluation_duration is not _NOT_PROVIDED:
            self._set(evaluation_duration=evaluation_duration)
        return self

    def debugging(self, *, seed: Any = _NOT_PROVIDED) -> "AlgorithmConfig":
        if seed is not _NOT_PROVIDED:
            self._set(seed=seed)
        return self

    def api_stack(self, **kwargs: Any) -> "AlgorithmConfig":
        """RLlib's switch between its old and new API stacks. There is one stack here, RLlib's new one
        (RLModule + Learner, EnvRunner + ConnectorV2): `enable_rl_module_and_learner` and
        `enable_env_runner_and_connector_v2` are accepted when True; False or another keyword is an error."""
        known = ("enable_rl_module_and_learner", "enable_env_runner_and_connector_v2")
        for key, value in kwargs.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"Unknown api_stack setting {key!r}.{hint} Known settings: {list(known)}")
            v.one_of(True, expected="True (the only API stack here is RLlib's new one: RLModule and Learner, "
                     "EnvRunner and ConnectorV2)")(key, v._scalar(value))
        return self

    def copy(self) -> "AlgorithmConfig":
        """A deep copy (as RLlib's): changing a dict or list of the copy, e.g. model_config's
        fcnet_hiddens, leaves the original (and an algorithm built from it) as it was."""
        return copy.deepcopy(self)

    def get_algorithm_class(self) -> type:
        raise ValueError(f"{type(self).__name__} has no algorithm; use an algorithm config such as PPOConfig")

    def build_train_fn(self, num_iterations: int) -> Any:
        """Overridden by algorithms that train fully inside one `jax.jit` (PPO, DQN, SAC)."""
        raise ValueError(f"{type(self).__name__} has no all-in-jit training (build_train_fn); expected PPOConfig, "
                         f"DQNConfig or SACConfig, received {type(self).__name__}: use .build().train() instead")

    def build(self) -> Any:
        """The Algorithm for a validated copy of this config: later config changes do not leak in,
        and this config is left as it was (validation's normalised values go to the copy)."""
        algorithm_class = self.get_algorithm_class()
        config = self.copy()
        config.validate()
        return algorithm_class(config)

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

    def learner_count(self) -> int:
        """Devices the update runs on (`learners(num_learners=...)`; 1 by default)."""
        from jaxrl_modules.algorithms.data_parallel import num_learners

        return num_learners(self)

    def batch_size(self) -> int:
        """The train batch per learner: `train_batch_size_per_learner`, else `train_batch_size` split
        over the learners (RLlib's rule)."""
        if self.train_batch_size_per_learner:
            return int(self.train_batch_size_per_learner)
        return max(1, int(self.train_batch_size) // self.learner_count())

    def total_batch_size(self) -> int:
        """The global train batch: per learner x learners (what an iteration samples)."""
        return self.batch_size() * self.learner_count()

    def rollout_length(self) -> int:
        """Steps per env per iteration: `rollout_fragment_length`, or "auto" = global batch / num_envs."""
        if self.rollout_fragment_length == "auto":
            return max(1, self.total_batch_size() // self.num_envs_per_env_runner)
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

    def known_module_ids(self) -> Optional[list[str]]:
        """The ModuleIDs the module will have, where the config alone tells: the policies, plus the
        sub-specs of a MultiRLModuleSpec given as a dict (e.g. a shared encoder); None when only the
        env tells (a MultiRLModuleSpec without `policies`: its ids are checked when the learner builds)."""
        from jaxrl_modules.multi_rl_module import MultiRLModuleSpec

        spec = self.rl_module_spec
        if isinstance(spec, MultiRLModuleSpec):
            if isinstance(spec.rl_module_specs, dict):
                return list(dict.fromkeys([*spec.rl_module_specs, *(self.policy_ids() if self.policies is not None else [])]))
            return self.policy_ids()  # one spec shared by every listed policy (or default_policy)
        return self.policy_ids()

    def policy_ids(self) -> list[str]:
        if self.policies is None:
            return [DEFAULT_MODULE_ID]
        return sorted(self.policies) if not isinstance(self.policies, dict) else list(self.policies)


def _policies_check() -> v.Check:
    expected = "None, or a set/list/tuple/dict of policy (module) ids (str)"

    def check(name: str, value: Any) -> Any:
        if value is None:
            return None
        return _module_ids(name, value, expected, (set, frozenset, list, tuple, dict), "not empty")

    return v.validator(expected, check)


def _module_ids(name: str, value: Any, expected: str, kinds: tuple, empty: str) -> Any:
    """`value` when it is a non-empty collection (one of `kinds`, not a string) of str ModuleIDs; else a
    TypeError/ValueError naming `name`, what is `expected` and what was received."""
    if isinstance(value, (str, bytes)) or not isinstance(value, kinds):
        v.fail(name, expected, value, TypeError)
    bad = [p for p in value if not isinstance(p, str)]
    if bad:
        v.fail(name, f"{expected}; {bad[0]!r} is not a str", value, TypeError)
    if not value:
        v.fail(name, f"{expected}, {empty}", value)
    return value


_POLICIES_TO_TRAIN = "None (train every module) or a non-empty collection (set/list/tuple) of ModuleIDs (str)"


def _policies_to_train_check() -> v.Check:
    """RLlib's `multi_agent(policies_to_train=...)`: None, or the ModuleIDs to update. RLlib's callable
    form `(module_id, batch) -> bool` is refused: the update is one jitted function, so which modules
    it updates is fixed when it is built and cannot depend on the batch."""

    def check(name: str, value: Any) -> Any:
        if value is None:
            return None
        if callable(value):
            v.fail(name, f"{_POLICIES_TO_TRAIN}; the callable form (module_id, batch) -> bool is not supported (the "
                   "jitted update fixes which modules it trains when it is built): list the ModuleIDs instead",
                   value, TypeError)
        return _module_ids(name, value, _POLICIES_TO_TRAIN, (set, frozenset, list, tuple),
                           "not empty (to train nothing, do not call train())")

    return v.validator(_POLICIES_TO_TRAIN, check)


def check_policies_to_train(value: Any, known: Any) -> list[str]:
    """The ModuleIDs of `known` that `policies_to_train` (None: all of them) selects, in `known`'s
    order; a ValueError naming the setting, the unknown ids and the known ones otherwise."""
    known = list(known)
    value = _policies_to_train_check()("policies_to_train", value)
    if value is None:
        return known
    unknown = [m for m in value if m not in known]
    if unknown:
        v.fail("policies_to_train", f"{_POLICIES_TO_TRAIN}, each one of the known ModuleIDs {known} (unknown: "
               f"{sorted(unknown)})", value)
    return [m for m in known if m in set(value)]
