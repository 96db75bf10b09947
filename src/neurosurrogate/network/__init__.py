"""Circuits of surrogate cells: configs, connectivity, realisation, the batched engine, measures.

Importing this package imports neither torch nor NEURON; :mod:`.engine` imports torch.
"""
