"""Architectures, one file each; importing this package registers them all."""

from neurosurrogate.surrogate.architectures import (  # noqa: F401
    cnn_lstm,
    gru,
    gru_fb,
    gru_history,
    gru_prior,
    gru_soma,
    linear,
    mlp,
    nonlinear,
    tcn,
    wavenet,
)
