"""BCConfig: behaviour cloning from recorded transitions (`offline_data(input_=path)`)."""

from __future__ import annotations

import os
from typing import Any

from jaxrl_modules import validation as v
from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig
from jaxrl_modules.rl_module_spec import RLModuleSpec

_NOT_PROVIDED = object()


class BCConfig(AlgorithmConfig):
    """RLlib's BC settings: lr 1e-4, train_batch_size_per_learner (per `train()` call) sampled
    from the dataset, split into minibatches; the env (optional) is used by `evaluate()`."""

    def __init__(self) -> None:
        super().__init__()
        self.lr = 1e-4
        self.input_: Any = None
        self.train_batch_size_per_learner = 2000
        self.minibatch_size = 256
        self.num_epochs = 1

    def _training_keys(self) -> list[str]:
        return super()._training_keys() + ["minibatch_size", "num_epochs"]

    def settings_table(self) -> dict[str, v.Check]:
        return {
            **super().settings_table(),
            "input_": v.instance_of(str, os.PathLike, what="a path (str or os.PathLike) to an .npz file or a directory"),
            "minibatch_size": v.positive_int,
            "num_epochs": v.positive_int,
        }

    def _validate_together(self) -> None:
        super()._validate_together()
        self._check_minibatch_size()

    def offline_data(self, *, input_: Any = _NOT_PROVIDED) -> "BCConfig":
        if input_ is not _NOT_PROVIDED:
            self._set(input_=input_)
        return self

    def get_algorithm_class(self) -> type:
        from jaxrl_modules.algorithms.bc.bc import BC

        return BC

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from jaxrl_modules.algorithms.bc.module import DefaultBCRLModule

        return RLModuleSpec(module_class=DefaultBCRLModule)

    def get_default_learner_class(self) -> type:
        from jaxrl_modules.algorithms.bc.learner import BCLearner

        return BCLearner
