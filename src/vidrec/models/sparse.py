"""Small helpers for sparse index arrays (CSR/CSC) shared by top-N's seen mask and item co-counts."""

from __future__ import annotations

import numpy as np


def expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions ``starts[i], starts[i] + 1, ..., starts[i] + lengths[i] - 1`` for every ``i``, in
    order, as one int64 array (the gather index of a CSR's rows ``i``)."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    # each range's offset inside the output, subtracted so arange's running count restarts per range
    firsts = np.cumsum(lengths) - lengths
    return np.repeat(starts - firsts, lengths) + np.arange(total, dtype=np.int64)


def row_pointer(keys: np.ndarray, n: int) -> np.ndarray:
    """The ``(n + 1,)`` int64 row pointer of a CSR whose entries have row ``keys`` (each in ``[0, n)``)."""
    out = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(np.asarray(keys, dtype=np.int64), minlength=n), out=out[1:])
    return out


def sorted_positions(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each of ``values``' position in the sorted ``ids``, ``-1`` for a value that is not there."""
    values = np.asarray(values, dtype=np.int64)
    if not len(ids):
        return np.full(len(values), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
    return np.where(ids[pos] == values, pos, -1)
