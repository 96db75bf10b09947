"""Streaming surrogate models (torch): protocol, architectures, registry, model files."""
