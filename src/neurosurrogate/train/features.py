"""Input features of many trials kept sparse, densified one batch at a time.

A multi-compartment cell has hundreds of synapses: the dense features of the
``hay-l5pc`` training set (2,000 trials x 2,000 ms x 400 channels, float32)
would take 6.4 GB, although only the bins with an event onset are non-zero
(about 2 entries per event). :class:`SparseFeatures` stores, per trial, the
flat indices ``k * n_in + c`` and values of the non-zero entries of its
``(T, n_in)`` feature matrix, and rebuilds any batch exactly (the same float32
values as the dense array).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch


class SparseFeatures:
    """(N, T, n_in) float32 features, indexable like a tensor along the first axis.

    Args:
        arrays: the (T, n_in) float32 feature matrix of each trial (consumed one at a time).
        T, n_in: expected shape of each matrix.

    Raises:
        ValueError: a matrix has another shape, or ``T * n_in`` does not fit int32.
    """

    def __init__(self, arrays: Iterable[np.ndarray], T: int, n_in: int) -> None:
        if T * n_in >= 2**31:
            raise ValueError(f"T * n_in = {T * n_in} does not fit the int32 indices of SparseFeatures")
        self.T, self.n_in = int(T), int(n_in)
        self._idx: list[np.ndarray] = []
        self._val: list[np.ndarray] = []
        for i, x in enumerate(arrays):
            x = np.asarray(x, dtype=np.float32)
            if x.shape != (self.T, self.n_in):
                raise ValueError(f"trial {i}: features have shape {x.shape}, expected {(self.T, self.n_in)}")
            flat = x.ravel()
            nz = np.flatnonzero(flat)
            self._idx.append(nz.astype(np.int32))
            self._val.append(flat[nz])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self._idx), self.T, self.n_in)

    def __len__(self) -> int:
        return len(self._idx)

    @property
    def nbytes(self) -> int:
        """Memory held by the indices and values, bytes."""
        return int(sum(a.nbytes + b.nbytes for a, b in zip(self._idx, self._val)))

    def __getitem__(self, idx) -> torch.Tensor:
        """Dense (len(idx), T, n_in) float32 tensor of the trials ``idx`` (int array, list or slice)."""
        if isinstance(idx, slice):
            rows = list(range(*idx.indices(len(self))))
        else:
            rows = [int(i) for i in np.asarray(idx).reshape(-1)]
        n_cell = self.T * self.n_in
        out = torch.zeros(len(rows) * n_cell, dtype=torch.float32)
        if rows:
            flat = np.concatenate([self._idx[r].astype(np.int64) + b * n_cell for b, r in enumerate(rows)])
            vals = np.concatenate([self._val[r] for r in rows])
            out[torch.from_numpy(flat)] = torch.from_numpy(vals)
        return out.view(len(rows), self.T, self.n_in)
