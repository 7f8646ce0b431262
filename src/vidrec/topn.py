"""Top-N for all users from factor vectors: blocked BLAS scoring in ``mapInArrow``.

Not a per-user cross join: the item factors are broadcast once, users stream through in Arrow
batches of ``block_size``, each block is scored with one matrix product (torch, on the GPU when
asked), seen items are masked out, and ``torch.topk`` keeps the best ``n``. The output is the
candidate-list contract of :mod:`vidrec.generators`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec.constants import COL_ITEM_IDX, COL_RANK, COL_SCORE, COL_USER_IDX

COL_FEATURES = "features"
_SEEN = "_seen"
RECS_SCHEMA = f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_SCORE} double, {COL_RANK} int"


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
        Pairs (row of ``user_vecs``, item id) to exclude.
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
    u = torch.as_tensor(user_vecs, dtype=torch.float32, device=device)
    v = torch.as_tensor(item_vecs, dtype=torch.float32, device=device)
    scores = u @ v.T
    if len(seen_items):
        pos = np.searchsorted(item_ids, seen_items)
        pos_c = np.minimum(pos, len(item_ids) - 1)
        known = item_ids[pos_c] == seen_items
        rows_t = torch.as_tensor(seen_rows[known], dtype=torch.long, device=device)
        cols_t = torch.as_tensor(pos_c[known], dtype=torch.long, device=device)
        scores[rows_t, cols_t] = float("-inf")
    top_scores, top_pos = torch.topk(scores, k, dim=1)
    return item_ids[top_pos.cpu().numpy()], top_scores.double().cpu().numpy()


def top_n_from_factors(
    spark: SparkSession,
    user_factors: DataFrame,
    item_factors: DataFrame,
    seen: DataFrame,
    n: int,
    block_size: int = 2048,
    use_gpu: bool = False,
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
    n, block_size : int
        List length; users per scored block (one Arrow batch).
    use_gpu : bool
        Score on the executor's CUDA device.

    Returns
    -------
    DataFrame
        ``user_idx, item_idx, score, rank`` with ranks 1..n (fewer when the user has seen
        almost everything), scores non-increasing with rank.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    for df, col, name in (
        (user_factors, COL_USER_IDX, "user_factors"),
        (item_factors, COL_ITEM_IDX, "item_factors"),
    ):
        missing = {col, COL_FEATURES} - set(df.columns)
        if missing:
            raise ValueError(f"{name} lacks column(s) {sorted(missing)}")
    pdf = item_factors.select(COL_ITEM_IDX, COL_FEATURES).toPandas().sort_values(COL_ITEM_IDX)
    if pdf.empty:
        return spark.createDataFrame([], RECS_SCHEMA)
    item_ids = pdf[COL_ITEM_IDX].to_numpy(dtype=np.int64)
    item_vecs = np.stack(pdf[COL_FEATURES].to_numpy()).astype(np.float32)
    bc = spark.sparkContext.broadcast((item_ids, item_vecs))
    device = "cuda" if use_gpu else "cpu"

    seen_lists = seen.groupBy(COL_USER_IDX).agg(F.collect_list(COL_ITEM_IDX).alias(_SEEN))
    users = user_factors.select(COL_USER_IDX, COL_FEATURES).join(seen_lists, COL_USER_IDX, "left")

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import torch

        torch.set_num_threads(1)  # one Spark task per core already
        ids, vecs = bc.value
        rank = vecs.shape[1]
        for batch in batches:
            for start in range(0, batch.num_rows, block_size):
                part = batch.slice(start, block_size)
                user_ids = part.column(COL_USER_IDX).to_numpy(zero_copy_only=False)
                feats = part.column(COL_FEATURES)
                flat = feats.flatten().to_numpy(zero_copy_only=False)
                user_vecs = flat.astype(np.float32).reshape(-1, rank)
                seen_col = part.column(_SEEN)
                lengths = seen_col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
                seen_items = seen_col.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
                seen_rows = np.repeat(np.arange(len(user_ids)), lengths)
                items, scores = score_block(user_vecs, seen_rows, seen_items, vecs, ids, n, device)
                ok = np.isfinite(scores)
                ranks = np.cumsum(ok, axis=1)
                rows = np.broadcast_to(np.arange(len(user_ids))[:, None], scores.shape)
                yield pa.RecordBatch.from_arrays(
                    [
                        pa.array(user_ids[rows[ok]].astype(np.int32)),
                        pa.array(items[ok].astype(np.int32)),
                        pa.array(scores[ok]),
                        pa.array(ranks[ok].astype(np.int32)),
                    ],
                    names=[COL_USER_IDX, COL_ITEM_IDX, COL_SCORE, COL_RANK],
                )

    return users.mapInArrow(score, RECS_SCHEMA)
