"""Architectures, one file each; importing this package registers them all."""

from neurosurrogate.surrogate.architectures import (  # noqa: F401
    cnn_lstm,
    gru,
    linear,
    mlp,
    nonlinear,
    tcn,
    wavenet,
)
