"""Default network building blocks (flax.linen) built from a DefaultModelConfig."""

from jaxrl_modules.models.cnn import CNN, DEFAULT_FILTERS, get_filter_config
from jaxrl_modules.models.encoder import (Encoder, check_observation_space, initial_lstm_state, make_head,
                                          refuse_unused_model_fields)
from jaxrl_modules.models.lstm import LSTM
from jaxrl_modules.models.mlp import MLP, GaussianHead

__all__ = [
    "CNN", "DEFAULT_FILTERS", "get_filter_config", "Encoder", "make_head", "check_observation_space", "initial_lstm_state",
    "refuse_unused_model_fields",
    "LSTM", "MLP",
    "GaussianHead",
]
