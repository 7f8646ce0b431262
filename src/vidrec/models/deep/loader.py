"""The one seam between Parquet shards and PyTorch: every model reads its data through this module.

Today it is Petastorm 0.13.1: ``make_batch_reader`` (whole row groups, sharded by rank as
``row_group_index % world_size``) feeding ``BatchedDataLoader`` (column-wise batches; the row-by-row
``petastorm.pytorch.DataLoader`` is ~70x slower). Known Petastorm bugs are handled here:

- its default thread pool sometimes returns an *empty epoch* with no error: the reader runs with
  ``reader_pool_type='dummy'`` (reads in the calling thread; no bad epoch measured);
- sharding needs at least as many row groups as ranks (:mod:`vidrec.models.deep.shards` writes them so).

Replacing Petastorm means rewriting :func:`iter_batches` (and the two small helpers) only; models
and the training loop see ``dict[str, torch.Tensor]`` batches. Array columns arrive as 2-D tensors.
Int columns arrive as int32, float columns as float32.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Petastorm's reader pool: 'dummy' avoids the silent empty epochs of its thread pool.
READER_POOL = "dummy"


def dataset_url(path: str) -> str:
    """A URL Petastorm accepts: local paths become ``file:///abs/path``; URLs pass unchanged."""
    parsed = urlparse(str(path))
    if parsed.scheme and len(parsed.scheme) > 1:
        return str(path)
    return "file://" + str(Path(path).resolve())  # not as_uri(): Petastorm does not decode %3D


def _local_path(path: str) -> str:
    parsed = urlparse(str(path))
    if parsed.scheme == "file":
        return parsed.path
    return str(path)


def _silence_petastorm() -> None:
    """Drop the deprecation noise Petastorm 0.13.1 emits on pyarrow 14 (every read, every rank)."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\..*)?")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"petastorm(\..*)?")
    warnings.filterwarnings("ignore", message=r".*(non-writable|not writable).*")


def epoch_seed(seed: int, epoch: int) -> int:
    """The reader seed of ``epoch`` (non-zero: Petastorm treats 0 as 'not seeded')."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 1) % (2**31 - 1) or 1


def iter_batches(
    path: str,
    rank: int,
    world_size: int,
    batch_size: int,
    epoch: int,
    columns: Sequence[str],
    seed: int = 0,
    shuffle: bool = True,
    shuffle_buffer: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of this rank's shard of the Parquet dataset at ``path``, for one epoch.

    Each rank reads the row groups whose index ``% world_size == rank``: ranks read disjoint parts
    and together every row exactly once per epoch; no rank reads the whole set.

    Parameters
    ----------
    path : str
        Dataset folder (local path or URL).
    rank, world_size : int
        This reader's shard and the number of shards.
    batch_size : int
        Rows per batch (the last batch of the epoch may be smaller).
    epoch : int
        Seeds the order: row groups and rows within them are shuffled per epoch when ``shuffle``.
    columns : sequence of str
        Columns to read (exact names).
    seed : int
        Base seed; same ``(seed, epoch)``, same order.
    shuffle : bool
        Shuffle row-group order and rows within each row group.
    shuffle_buffer : int
        Rows of the cross-row-group shuffling buffer (0: none).

    Yields
    ------
    dict of str to torch.Tensor
        One tensor per column; int32/float32, arrays as ``(rows, length)``.

    Raises
    ------
    ValueError
        On an invalid rank, world size or batch size.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from petastorm import make_batch_reader
    from petastorm.pytorch import BatchedDataLoader

    _silence_petastorm()
    wanted = list(columns)
    reader = make_batch_reader(
        dataset_url(path),
        schema_fields=[f"^{re.escape(c)}$" for c in wanted],
        reader_pool_type=READER_POOL,
        num_epochs=1,
        cur_shard=rank if world_size > 1 else None,
        shard_count=world_size if world_size > 1 else None,
        shuffle_row_groups=shuffle,
        shuffle_rows=shuffle,
        seed=epoch_seed(seed, epoch) if shuffle else None,
    )
    with BatchedDataLoader(reader, batch_size=batch_size, shuffling_queue_capacity=shuffle_buffer) as loader:
        for batch in loader:
            yield {c: batch[c] for c in wanted}


def _to_tensors(table: Any, columns: Sequence[str]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for c in columns:
        col = table.column(c)
        if hasattr(col.type, "value_type"):
            values = col.to_pylist()
            arr = np.asarray(values) if values else np.zeros((0, 0))
            if arr.dtype == np.int64:
                arr = arr.astype(np.int32)
            elif arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            out[c] = torch.as_tensor(arr)
        else:
            out[c] = torch.as_tensor(col.to_numpy(zero_copy_only=False).copy())
    return out


def _dataset(path: str) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(
        _local_path(path), format="parquet", exclude_invalid_files=False, ignore_prefixes=["_", "."]
    )


def read_table(path: str, columns: Sequence[str]) -> dict[str, torch.Tensor]:
    """All rows of a small side table (e.g. the catalog's tokens) as tensors, on every rank.

    Only for catalog-sized tables that a model holds as buffers; training sets go through
    :func:`iter_batches`.
    """
    table = _dataset(path).to_table(columns=list(columns))
    return _to_tensors(table, columns)


def peek_batch(path: str, columns: Sequence[str], rows: int = 1) -> dict[str, torch.Tensor]:
    """The first ``rows`` rows of the dataset (shapes and dtypes as :func:`iter_batches` yields).

    ``peek_batch(...)`` sliced to zero rows is the empty batch a rank with no data left feeds its
    model so that it stays in step with its DDP peers.
    """
    table = _dataset(path).head(rows, columns=list(columns))
    return _to_tensors(table, columns)


def empty_like(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``batch`` with zero rows (same columns, dtypes and trailing shapes)."""
    return {k: v[:0] for k, v in batch.items()}
