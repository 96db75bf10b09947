"""Traces, datasets, storage and action-potential peak handling (no NEURON, no torch)."""
