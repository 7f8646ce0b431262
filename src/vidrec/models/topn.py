"""Top-N for all users from factor vectors: blocked BLAS scoring in ``mapInArrow``.

Not a per-user cross join: the item factors are broadcast once, users stream through in Arrow
batches, each block of users is scored with one matrix product (torch; on the GPU when asked), the
seen items are masked out with a sparse mask, and ``torch.topk`` keeps the best ``n``. The output is
the candidate-list contract of :mod:`vidrec.models.registry`.

Where the time goes and what keeps it near the GEMM + top-k floor (measured in ``BENCHMARKS.md``):

- the seen pairs reach the scoring tasks grouped per user and joined to the users in Spark (arrays
  cross into Python cheaper than rows), or, with ``seen_broadcast_max_pairs > 0`` and at most that
  many pairs, as a broadcast CSR of item *column positions* (no shuffle, but a count and a collect
  to the driver: measured no faster here, 10.4 vs 9.8 CPU-s at 35k users x 12k items, 2.1M pairs);
- blocks are sized to the catalog on CPU (``block x items`` near :data:`CPU_BLOCK_FLOATS` scores, so
  the score block stays in cache for ``topk``; 250 users x 4k items, 37 users x 27k items);
- one torch thread per task (Spark runs one task per core); item factors are kept as a tensor per
  Python worker across tasks (workers are reused), on the device they are scored on;
- on a GPU (``use_gpu``) the block is larger (:data:`GPU_BLOCK_FLOATS`), item factors are moved to
  the device once per worker, and only ``k`` int32 positions and float32 scores per user come back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec.constants import COL_ITEM_IDX, COL_RANK, COL_SCORE, COL_USER_IDX
from vidrec.models.sparse import expand_ranges, row_pointer, sorted_positions
from vidrec.models.topn_kernel import (  # noqa: F401  (block sizes re-exported)
    CPU_BLOCK_FLOATS,
    GPU_BLOCK_FLOATS,
    block_rows,
    score_user_block,
    topk_masked,
)

if TYPE_CHECKING:
    import pandas as pd
    import torch

COL_FEATURES = "features"
_SEEN = "_seen"
RECS_SCHEMA = f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_SCORE} double, {COL_RANK} int"
#: Default of ``seen_broadcast_max_pairs``: 0, the shuffle join (measured as fast or faster here).
SEEN_BROADCAST_MAX_PAIRS = 0

# Per Python worker: item factors as a tensor on their device, keyed by (catalog token, device).
_ITEM_CACHE: dict[tuple[str, str], torch.Tensor] = {}


@dataclass
class SeenIndex:
    """Seen pairs as a CSR over user ids: ``cols[indptr[j]:indptr[j+1]]`` are the item *columns*
    (rows of the item matrix) seen by user ``users[j]``.

    Attributes
    ----------
    users : (u,) int64 array, sorted, unique
    indptr : (u + 1,) int64 array
    cols : int32 array
    """

    users: np.ndarray
    indptr: np.ndarray
    cols: np.ndarray

    @classmethod
    def build(cls, seen_users: np.ndarray, seen_items: np.ndarray, item_ids: np.ndarray) -> SeenIndex:
        """From parallel arrays of pairs; items not in ``item_ids`` (sorted) are dropped."""
        seen_users = np.asarray(seen_users, dtype=np.int64)
        seen_items = np.asarray(seen_items, dtype=np.int64)
        if len(item_ids) == 0 or len(seen_items) == 0:
            return cls(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int32))
        pos = sorted_positions(item_ids, seen_items)
        known = pos >= 0
        users, cols = seen_users[known], pos[known].astype(np.int32)
        order = np.argsort(users, kind="stable")
        users, cols = users[order], cols[order]
        uniq, rows = np.unique(users, return_inverse=True)
        return cls(uniq, row_pointer(rows, len(uniq)), cols)

    def lookup(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)``: each seen pair of ``user_ids`` as (row in ``user_ids``, item column)."""
        user_ids = np.asarray(user_ids, dtype=np.int64)
        if len(self.users) == 0 or len(user_ids) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        p = sorted_positions(self.users, user_ids)
        found = p >= 0
        p = np.where(found, p, 0)
        starts = self.indptr[p]
        lengths = np.where(found, self.indptr[p + 1] - starts, 0)
        rows = np.repeat(np.arange(len(user_ids)), lengths)
        return rows, self.cols[expand_ranges(starts, lengths)].astype(np.int64)


def scoring_device(use_gpu: bool, gpu_addresses: list[str] | None = None) -> str:
    """The torch device a scoring task uses.

    Parameters
    ----------
    use_gpu : bool
        False: ``"cpu"``. True: ``"cuda:<first address>"`` of the task's Spark ``gpu`` resource when
        given (``TaskContext.resources()``), else ``"cuda"``.
    gpu_addresses : list of str, optional

    Raises
    ------
    RuntimeError
        When ``use_gpu`` is set and torch sees no CUDA device (on this executor).
    """
    if not use_gpu:
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("top-N: use_gpu is set but torch sees no CUDA device on this executor")
    if gpu_addresses:
        return f"cuda:{int(gpu_addresses[0])}"
    return "cuda"


def _task_gpu_addresses() -> list[str] | None:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return None
    res = ctx.resources().get("gpu")
    return list(res.addresses) if res is not None else None


def score_block(
    user_vecs: np.ndarray,
    seen_rows: np.ndarray,
    seen_items: np.ndarray,
    item_vecs: np.ndarray,
    item_ids: np.ndarray,
    n: int,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``n`` unseen items for each user of a block.

    Parameters
    ----------
    user_vecs : (b, r) array
    seen_rows, seen_items : int arrays of equal length
        Pairs (row of ``user_vecs``, item id) to exclude; ids not in ``item_ids`` are ignored.
    item_vecs : (m, r) array
    item_ids : (m,) sorted int array, the id of each row of ``item_vecs``
    n : int
    device : str
        Torch device for the product and the top-k.

    Returns
    -------
    items : (b, k) int array of item ids, k = min(n, m)
    scores : (b, k) float array, ``-inf`` where fewer than ``k`` unseen items exist
    """
    import torch

    k = min(n, len(item_ids))
    u = torch.as_tensor(np.ascontiguousarray(user_vecs, dtype=np.float32)).to(device)
    v = torch.as_tensor(np.ascontiguousarray(item_vecs, dtype=np.float32)).to(device)
    seen_items = np.asarray(seen_items, dtype=np.int64)
    rows, cols = np.asarray(seen_rows, dtype=np.int64), np.zeros(0, np.int64)
    if len(seen_items):
        pos = sorted_positions(item_ids, seen_items)
        known = pos >= 0
        rows, cols = rows[known], pos[known]
    top_pos, top_scores = topk_masked(u @ v.T, rows, cols, k, device)
    return item_ids[top_pos], top_scores.astype(np.float64)


def _item_tensor(key: str, vecs: np.ndarray, device: str) -> torch.Tensor:
    import torch

    cached = _ITEM_CACHE.get((key, device))
    if cached is None:
        _ITEM_CACHE.clear()  # one catalog per worker at a time
        cached = torch.from_numpy(np.ascontiguousarray(vecs, dtype=np.float32)).to(device)
        _ITEM_CACHE[(key, device)] = cached
    return cached


def _collect_seen(seen: DataFrame, item_ids: np.ndarray, max_pairs: int) -> SeenIndex | None:
    """The seen pairs as a :class:`SeenIndex` when there are at most ``max_pairs``; else None."""
    pairs = seen.select(F.col(COL_USER_IDX).cast("int"), F.col(COL_ITEM_IDX).cast("int"))
    if max_pairs <= 0 or pairs.count() > max_pairs:
        return None
    pdf: pd.DataFrame = pairs.toPandas()
    return SeenIndex.build(pdf[COL_USER_IDX].to_numpy(), pdf[COL_ITEM_IDX].to_numpy(), item_ids)


def top_n_from_factors(
    spark: SparkSession,
    user_factors: DataFrame,
    item_factors: DataFrame,
    seen: DataFrame,
    n: int,
    block_size: int = 2048,
    use_gpu: bool = False,
    seen_broadcast_max_pairs: int = SEEN_BROADCAST_MAX_PAIRS,
    cpu_block_floats: int = CPU_BLOCK_FLOATS,
) -> DataFrame:
    """Top-``n`` items by dot product for every user of ``user_factors``, seen items excluded.

    Parameters
    ----------
    user_factors : DataFrame
        ``(user_idx int, features array<float>)``.
    item_factors : DataFrame
        ``(item_idx int, features array<float>)``; collected to the driver and broadcast (a
        catalog of 1M items at rank 64 is 256 MB).
    seen : DataFrame
        ``(user_idx, item_idx)`` pairs never to recommend.
    n : int
        List length.
    block_size : int
        Most users per scored block; on CPU capped so a block holds about :data:`CPU_BLOCK_FLOATS`
        scores (see :func:`block_rows`).
    use_gpu : bool
        Score on the task's CUDA device (Spark ``gpu`` resource), blocks of ~:data:`GPU_BLOCK_FLOATS`.
    seen_broadcast_max_pairs : int
        Broadcast the seen pairs (as a CSR, 4 bytes a pair) when there are at most this many;
        otherwise (and by default, 0) they are grouped per user and joined to the users in Spark.
    cpu_block_floats : int
        Scores per block on CPU (the cap of ``block_size``; see :func:`block_rows`).

    Returns
    -------
    DataFrame
        ``user_idx, item_idx, score, rank`` with ranks 1..n (fewer when the user has seen
        almost everything), scores non-increasing with rank.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if cpu_block_floats < 1:
        raise ValueError(f"cpu_block_floats must be >= 1, got {cpu_block_floats}")
    for df, col, name in (
        (user_factors, COL_USER_IDX, "user_factors"),
        (item_factors, COL_ITEM_IDX, "item_factors"),
    ):
        missing = {col, COL_FEATURES} - set(df.columns)
        if missing:
            raise ValueError(f"{name} lacks column(s) {sorted(missing)}")
    pdf = cast("pd.DataFrame", item_factors.select(COL_ITEM_IDX, COL_FEATURES).toPandas()).sort_values(
        COL_ITEM_IDX
    )
    if pdf.empty:
        return spark.createDataFrame([], RECS_SCHEMA)
    item_ids = pdf[COL_ITEM_IDX].to_numpy(dtype=np.int64)
    item_vecs = np.stack(pdf[COL_FEATURES].to_numpy()).astype(np.float32)
    sc = spark.sparkContext
    bc_items = sc.broadcast((item_ids, item_vecs))
    token = uuid.uuid4().hex  # names this catalog in the workers' tensor cache
    seen_index = _collect_seen(seen, item_ids, seen_broadcast_max_pairs)
    bc_seen = sc.broadcast(seen_index) if seen_index is not None else None
    users = user_factors.select(COL_USER_IDX, COL_FEATURES)
    if seen_index is None:
        seen_lists = seen.groupBy(COL_USER_IDX).agg(F.collect_list(COL_ITEM_IDX).alias(_SEEN))
        users = users.join(seen_lists, COL_USER_IDX, "left")
    k = min(n, len(item_ids))
    names = [COL_USER_IDX, COL_ITEM_IDX, COL_SCORE, COL_RANK]

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import torch

        device = scoring_device(use_gpu, _task_gpu_addresses() if use_gpu else None)
        if device == "cpu":
            torch.set_num_threads(1)  # one Spark task per core already
        ids, vecs = bc_items.value
        v_t = _item_tensor(token, vecs, device).T
        index = bc_seen.value if bc_seen is not None else None
        rank = vecs.shape[1]
        step = block_rows(len(ids), block_size, device, cpu_block_floats)
        for batch in batches:
            for start in range(0, batch.num_rows, step):
                part = batch.slice(start, step)
                user_ids = part.column(COL_USER_IDX).to_numpy(zero_copy_only=False)
                flat = part.column(COL_FEATURES).flatten().to_numpy(zero_copy_only=False)
                user_vecs = flat.astype(np.float32).reshape(-1, rank)  # a writable copy for torch
                if index is not None:
                    rows, cols = index.lookup(user_ids)
                else:
                    seen_col = part.column(_SEEN)
                    lengths = seen_col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
                    seen_items = seen_col.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
                    rows = np.repeat(np.arange(len(user_ids)), lengths)
                    pos = sorted_positions(ids, seen_items)
                    known = pos >= 0
                    rows, cols = rows[known], pos[known]
                top_pos, top_scores = score_user_block(user_vecs, rows, cols, v_t, k, device)
                b = len(user_ids)
                out_users = np.repeat(user_ids.astype(np.int32), k)
                out_items = ids[top_pos].astype(np.int32).ravel()
                out_scores = top_scores.astype(np.float64).ravel()
                out_ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), b)
                ok = np.isfinite(out_scores)
                if not ok.all():  # a user with fewer than k unseen items: drop the masked tail
                    out_ranks = np.cumsum(ok.reshape(b, k), axis=1, dtype=np.int32).ravel()
                    out_users, out_items = out_users[ok], out_items[ok]
                    out_scores, out_ranks = out_scores[ok], out_ranks[ok]
                yield pa.RecordBatch.from_arrays(
                    [pa.array(out_users), pa.array(out_items), pa.array(out_scores), pa.array(out_ranks)],
                    names=names,
                )

    # pyspark's stub wants Iterable -> Iterable; Spark passes (and takes) an iterator
    return users.mapInArrow(score, RECS_SCHEMA)  # type: ignore[arg-type]
