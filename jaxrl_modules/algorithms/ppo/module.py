"""DefaultPPORLModule: actor (pi) and critic (vf) over the default encoder(s)."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import flax.linen as nn
import jax

from jaxrl_modules.apis import InferenceOnlyAPI, ValueFunctionAPI
from jaxrl_modules.columns import Columns
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.models import Encoder, check_observation_space, initial_lstm_state, make_head
from jaxrl_modules.rl_module import RLModule


class DefaultPPORLModule(RLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """RLlib's default PPO module.

    Params: `encoder` (vf_share_layers=True) or `actor_encoder` + `critic_encoder`, then
    `pi` and `vf` heads. An inference_only module has no critic (`vf`, `critic_encoder`);
    its params are the learner params minus those leaves. Stateful modules (use_lstm) are
    never inference_only (as in RLlib).
    """

    # The model config is parsed into one once, at construction (RLModule.__post_init__); `config()` returns it.
    model_config_class: ClassVar[type] = DefaultModelConfig

    @nn.nowrap
    def _drops_critic(self) -> bool:
        return self.inference_only and not self.config().use_lstm

    def setup(self) -> None:
        super().setup()
        cfg = self.config()
        check_observation_space(self.observation_space)
        shape = tuple(self.observation_space.shape)
        if cfg.vf_share_layers:
            self.encoder = Encoder(shape, cfg)
        else:
            self.actor_encoder = Encoder(shape, cfg)
            if not self._drops_critic():
                self.critic_encoder = Encoder(shape, cfg)
        dist_cls = self.get_train_action_dist_cls()
        self.pi = make_head(cfg, dist_cls.required_input_dim(self.action_space, cfg), dist_cls)
        if not self._drops_critic():
            self.vf = make_head(cfg, 1)

    @nn.nowrap
    def get_initial_state(self) -> Any:
        cfg = self.config()
        if not cfg.use_lstm:
            return {}
        state = initial_lstm_state(cfg)
        return state if cfg.vf_share_layers else {"actor": state, "critic": dict(state)}

    @nn.nowrap
    def get_non_inference_attributes(self) -> list[str]:
        return ["vf"] + ([] if self.config().vf_share_layers else ["critic_encoder"])

    def _encode(self, batch: dict, which: str) -> tuple[jax.Array, Optional[dict]]:
        """Embeddings of `which` ("actor"/"critic") and, when stateful, its new state."""
        state = batch.get(Columns.STATE_IN)
        resets = batch.get("resets")
        if self.config().vf_share_layers:
            return self.encoder(batch[Columns.OBS], state, resets)
        enc = self.actor_encoder if which == "actor" else self.critic_encoder
        return enc(batch[Columns.OBS], None if state is None else state[which], resets)

    def _actor_critic(self, batch: dict, with_critic: bool) -> dict:
        emb, state = self._encode(batch, "actor")
        out = {Columns.ACTION_DIST_INPUTS: self.pi(emb)}
        shared = self.config().vf_share_layers
        critic_emb, critic_state = (emb, None)
        if not shared and (with_critic or self.is_stateful()):
            critic_emb, critic_state = self._encode(batch, "critic")
        if with_critic:
            out[Columns.EMBEDDINGS] = critic_emb
        if self.is_stateful():
            out[Columns.STATE_OUT] = state if shared else {"actor": state, "critic": critic_state}
        return out

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        return self._actor_critic(batch, with_critic=False)

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        return self._actor_critic(batch, with_critic=True)

    def _compute_values(self, batch: dict, embeddings: Optional[Any] = None) -> jax.Array:
        if embeddings is None:
            embeddings, _ = self._encode(batch, "critic")
        return self.vf(embeddings)[..., 0]
