"""Training of surrogates: configuration, losses, loop with checkpoints and resume."""
