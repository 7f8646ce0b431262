"""Top-N for all users from factor vectors: blocked BLAS scoring in ``mapInPandas``.

Not a per-user cross join: the item factors are broadcast once, users stream through in Arrow
batches of ``block_size``, each block is scored with one matrix product (torch, on the GPU when
asked), seen items are masked out, and ``torch.topk`` keeps the best ``n``. The output is the
candidate-list contract of :mod:`vidrec.generators`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec.constants import COL_ITEM_IDX, COL_RANK, COL_SCORE, COL_USER_IDX

COL_FEATURES = "features"
_SEEN = "_seen"
RECS_SCHEMA = f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_SCORE} double, {COL_RANK} int"


def score_block(
    user_vecs: np.ndarray,
    seen_lists: list[np.ndarray | None],
    item_vecs: np.ndarray,
    item_ids: np.ndarray,
    n: int,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best ``n`` unseen items for each user of a block.

    Parameters
    ----------
    user_vecs : (b, r) array
    seen_lists : list of b arrays of item ids (or None) to exclude per user
    item_vecs : (m, r) array
    item_ids : (m,) sorted int array, the id of each row of ``item_vecs``
    n : int
    device : str
        Torch device for the product and the top-k.

    Returns
    -------
    rows : (b, k) int array of user positions in the block
    items : (b, k) int array of item ids
    scores : (b, k) float array, ``-inf`` where fewer than ``k`` unseen items exist
    """
    import torch

    k = min(n, len(item_ids))
    u = torch.as_tensor(user_vecs, dtype=torch.float32, device=device)
    v = torch.as_tensor(item_vecs, dtype=torch.float32, device=device)
    scores = u @ v.T
    rows_idx: list[int] = []
    cols_idx: list[int] = []
    for row, seen in enumerate(seen_lists):
        if seen is not None and len(seen):
            pos = np.searchsorted(item_ids, seen)
            pos = pos[(pos < len(item_ids)) & (item_ids[np.minimum(pos, len(item_ids) - 1)] == seen)]
            rows_idx.extend([row] * len(pos))
            cols_idx.extend(pos.tolist())
    if rows_idx:
        scores[torch.as_tensor(rows_idx, device=device), torch.as_tensor(cols_idx, device=device)] = float(
            "-inf"
        )
    top_scores, top_pos = torch.topk(scores, k, dim=1)
    top_scores = top_scores.double().cpu().numpy()
    top_items = item_ids[top_pos.cpu().numpy()]
    rows = np.repeat(np.arange(len(user_vecs))[:, None], k, axis=1)
    return rows, top_items, top_scores


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

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import torch

        torch.set_num_threads(1)  # one Spark task per core already
        ids, vecs = bc.value
        for batch in batches:
            for start in range(0, len(batch), block_size):
                part = batch.iloc[start : start + block_size]
                user_vecs = np.stack(part[COL_FEATURES].to_numpy()).astype(np.float32)
                seen_part = [None if s is None else np.asarray(s, dtype=np.int64) for s in part[_SEEN]]
                rows, items, scores = score_block(user_vecs, seen_part, vecs, ids, n, device)
                ok = np.isfinite(scores)
                ranks = np.cumsum(ok, axis=1)
                user_ids = part[COL_USER_IDX].to_numpy()[rows]
                yield pd.DataFrame(
                    {
                        COL_USER_IDX: user_ids[ok].astype(np.int32),
                        COL_ITEM_IDX: items[ok].astype(np.int32),
                        COL_SCORE: scores[ok],
                        COL_RANK: ranks[ok].astype(np.int32),
                    }
                )

    return users.mapInPandas(score, RECS_SCHEMA)
