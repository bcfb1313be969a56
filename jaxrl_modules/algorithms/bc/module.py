"""DefaultBCRLModule: a policy head over the default encoder, no value function."""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn

from jaxrl_modules.columns import Columns
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.models import (Encoder, check_observation_space, initial_lstm_state, make_head,
                                  refuse_unused_model_fields)
from jaxrl_modules.rl_module import RLModule


class DefaultBCRLModule(RLModule):
    """RLlib's default BC module: `encoder` then `pi`; `_forward` serves every phase."""

    # DefaultModelConfig fields this module does not read: refused unless at their defaults.
    unused_model_fields: ClassVar[dict] = {
        "vf_share_layers": "BC's module has no value function: its one encoder feeds the policy head only",
    }

    # The model config is parsed into one once, at construction (RLModule.__post_init__); `config()` returns it.
    model_config_class: ClassVar[type] = DefaultModelConfig

    def __post_init__(self) -> None:
        super().__post_init__()
        refuse_unused_model_fields(self.config(), type(self))

    def setup(self) -> None:
        super().setup()
        cfg = self.config()
        check_observation_space(self.observation_space)
        self.encoder = Encoder(tuple(self.observation_space.shape), cfg)
        dist_cls = self.get_train_action_dist_cls()
        self.pi = make_head(cfg, dist_cls.required_input_dim(self.action_space, cfg), dist_cls)

    @nn.nowrap
    def get_initial_state(self) -> Any:
        cfg = self.config()
        return initial_lstm_state(cfg) if cfg.use_lstm else {}

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        emb, state = self.encoder(batch[Columns.OBS], batch.get(Columns.STATE_IN), batch.get("resets"))
        out = {Columns.ACTION_DIST_INPUTS: self.pi(emb)}
        if state is not None:
            out[Columns.STATE_OUT] = state
        return out
