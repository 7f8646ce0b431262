"""The one seam between Parquet shards and PyTorch: every model reads its data through this module.

Two readers behind :func:`iter_batches`, chosen by ``reader`` (``deep.launch.loader``), with the same
guarantees: each rank reads the row groups whose index ``% world_size == rank`` (in file order),
every epoch reads every row exactly once across ranks, the order is shuffled per ``(seed, epoch)``
(row groups and the rows within each), and batches are exactly ``batch_size`` rows but the last.

- ``pyarrow``: each of the rank's row groups read with ``ParquetFile.read_row_group``, each column
  converted once per row group (``torch.from_numpy``), rows permuted with one index per group, batches
  sliced (across group boundaries). No extra dependency (the GPU check runs it without Petastorm).
- ``petastorm`` (0.13.1): ``make_batch_reader`` (whole row groups, sharded the same way) feeding
  ``BatchedDataLoader`` (column-wise batches; the row-by-row ``petastorm.pytorch.DataLoader`` is ~70x
  slower). Known Petastorm bugs are handled here:

- its default thread pool sometimes returns an *empty epoch* with no error: the reader runs with
  ``reader_pool_type='dummy'`` (reads in the calling thread; no bad epoch measured);
- sharding needs at least as many row groups as ranks (:mod:`vidrec.models.deep.shards` writes them so).

Models and the training loop see ``dict[str, torch.Tensor]`` batches. Array columns arrive as 2-D
tensors. Int columns arrive as int32, float columns as float32 (the dtypes the shards hold).
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
import pyarrow.parquet as pq
import torch

log = logging.getLogger(__name__)

#: Petastorm's reader pool: 'dummy' avoids the silent empty epochs of its thread pool.
READER_POOL = "dummy"
#: The readers :func:`iter_batches` offers (``deep.launch.loader``).
READERS = ("pyarrow", "petastorm")
DEFAULT_READER = "pyarrow"


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


#: Petastorm's loggers that speak at INFO on every reader opened over plain Parquet shards ("Failed loading
#: Unischema ... Recovering rowgroup information ...": two lines per rank per epoch, 144 in one bench run).
PETASTORM_CHATTY = ("petastorm.etl.dataset_metadata",)


def _silence_petastorm() -> None:
    """Drop the deprecation noise Petastorm 0.13.1 emits on pyarrow 14 (every read, every rank) and its
    per-reader INFO lines: the shards are plain Parquet by design, so the Unischema is always inferred."""
    for name in PETASTORM_CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
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
    reader: str = DEFAULT_READER,
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
    reader : str
        ``pyarrow`` or ``petastorm`` (:data:`READERS`).

    Yields
    ------
    dict of str to torch.Tensor
        One tensor per column; int32/float32, arrays as ``(rows, length)``.

    Raises
    ------
    ValueError
        On an invalid rank, world size, batch size or reader, or (pyarrow) when this rank's shard
        has no row group (Petastorm raises its ``NoDataAvailableError``).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if reader not in READERS:
        raise ValueError(f"loader must be one of {', '.join(READERS)}, got '{reader}'")
    if reader == "pyarrow":
        yield from _iter_pyarrow(
            path, rank, world_size, batch_size, epoch, columns, seed, shuffle, shuffle_buffer
        )
        return
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


def _row_groups(path: str) -> tuple[Any, list[tuple[str, int]]]:
    """The dataset's filesystem and its row groups as ``(file, index in file)``, in file-name order."""
    dataset = _dataset(path)
    fs = dataset.filesystem
    groups: list[tuple[str, int]] = []
    for f in sorted(dataset.files):
        with fs.open_input_file(f) as handle:
            n = pq.ParquetFile(handle).metadata.num_row_groups
        groups += [(f, g) for g in range(n)]
    return fs, groups


def _column_tensor(col: Any) -> torch.Tensor:
    """One Arrow column as a tensor, converted once: scalars as they are, padded lists as 2-D."""
    arr = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    if hasattr(arr.type, "value_type"):
        n = len(arr)
        offsets = arr.offsets.to_numpy()
        width = int(offsets[1] - offsets[0]) if n else 0
        if n and (arr.null_count or not np.all(np.diff(offsets) == width)):
            raise ValueError(f"array column {col!r:.60} has ragged or null rows: shards hold padded arrays")
        values = arr.values.slice(int(offsets[0]), n * width).to_numpy(zero_copy_only=False)
        out = np.array(values).reshape(n, width)
    else:
        out = arr.to_numpy(zero_copy_only=False)
        if not out.flags.writeable:
            out = np.array(out)
    if out.dtype == np.int64:
        out = out.astype(np.int32)
    elif out.dtype == np.float64:
        out = out.astype(np.float32)
    return torch.from_numpy(out)


def _iter_pyarrow(
    path: str,
    rank: int,
    world_size: int,
    batch_size: int,
    epoch: int,
    columns: Sequence[str],
    seed: int,
    shuffle: bool,
    shuffle_buffer: int,
) -> Iterator[dict[str, torch.Tensor]]:
    wanted = list(columns)
    fs, groups = _row_groups(path)
    mine = groups[rank::world_size]
    if not mine:
        raise ValueError(
            f"loader: {path} has {len(groups)} row group(s), none for rank {rank} of {world_size} "
            "(the shard writer writes at least one per process)"
        )
    rng = np.random.default_rng([epoch_seed(seed, epoch), rank]) if shuffle else None
    if rng is not None:
        mine = [mine[i] for i in rng.permutation(len(mine))]
    carry: dict[str, torch.Tensor] | None = None  # rows held back: a short tail, or the shuffling buffer
    opened: dict[str, Any] = {}
    try:
        for f, g in mine:
            if f not in opened:
                opened.clear()  # one file open at a time (a file holds one group at the default sizes)
                opened[f] = pq.ParquetFile(fs.open_input_file(f))
            table = opened[f].read_row_group(g, columns=wanted)
            part = {c: _column_tensor(table.column(c)) for c in wanted}
            n, start = table.num_rows, 0
            if rng is not None and shuffle_buffer:
                # the shuffling buffer: the rows held back mixed with the new group's, once per group
                if carry is not None:
                    part, carry = _concat([carry, part]), None
                    n = len(part[wanted[0]])
                part = _permuted(part, rng, n)
            elif rng is not None:
                part = _permuted(part, rng, n)
            if carry is not None:  # complete the short tail of the last group first
                need = batch_size - len(carry[wanted[0]])
                if n < need:
                    carry = _concat([carry, part])
                    continue
                yield _concat([carry, {c: t[:need] for c, t in part.items()}])
                carry, start = None, need
            keep = shuffle_buffer if rng is not None else 0
            while start + batch_size <= n - keep:
                yield {c: t[start : start + batch_size] for c, t in part.items()}
                start += batch_size
            if start < n:
                carry = {c: t[start:] for c, t in part.items()}
        while carry is not None:  # the buffer's rows (or the last short tail)
            batch = {c: t[:batch_size] for c, t in carry.items()}
            rest = len(carry[wanted[0]]) - batch_size
            carry = {c: t[batch_size:] for c, t in carry.items()} if rest > 0 else None
            yield batch
    finally:
        opened.clear()


def _permuted(part: dict[str, torch.Tensor], rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
    """``part``'s rows in a random order (one index for every column)."""
    if n < 2:
        return part
    perm = torch.from_numpy(rng.permutation(n))
    return {c: t.index_select(0, perm) for c, t in part.items()}


def _concat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {c: torch.cat([p[c] for p in parts]) for c in parts[0]}


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
