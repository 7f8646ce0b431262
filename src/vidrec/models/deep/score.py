"""Batch top-N scoring of users in Spark with a trained deep model.

The model file (``state_dict`` + config, written by the training loop) is read once on the driver
and broadcast; ``mapInPandas`` streams users in blocks of ``block_size``; each block is scored
against every item by the model in eval mode under ``torch.no_grad`` (on the executor's GPU when
asked), non-candidate and seen items are masked out and ``torch.topk`` keeps the best ``n``. The
output is the candidate-list contract of :mod:`vidrec.models.registry`: ``user_idx int, item_idx int,
score double, rank int``, ranks 1..n per user without gaps, scores non-increasing, no seen pair,
no duplicate item.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec.constants import COL_ITEM_IDX, COL_RANK, COL_SCORE, COL_USER_IDX
from vidrec.models.deep import schema as S

RECS_SCHEMA = f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_SCORE} double, {COL_RANK} int"
EMBEDDINGS_SCHEMA = f"{COL_USER_IDX} int, {S.COL_EMBEDDING} array<float>"
_SEEN = "_seen"


def read_model_bytes(model_path: str) -> bytes:
    """The bytes of a saved model file (local path or ``file://`` URL)."""
    path = model_path[len("file://") :] if model_path.startswith("file://") else model_path
    return Path(path).read_bytes()


def _load(payload: bytes, device: str) -> Any:
    import torch

    from vidrec.models.deep.networks import load_model

    return load_model(torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False), device)


def _feature_tensors(part: pd.DataFrame, columns: Sequence[str], device: str) -> dict[str, Any]:
    import torch

    out = {}
    for c in columns:
        values = part[c].to_numpy()
        if len(values) and isinstance(values[0], (list, np.ndarray)):
            arr = np.stack([np.asarray(v) for v in values])
        else:
            arr = np.asarray(values)
        out[c] = torch.as_tensor(
            arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float32), device=device
        )
    return out


def top_n_block(
    scores: Any, seen_lists: Sequence[np.ndarray | None], allowed: Any, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best ``n`` allowed, unseen items per row of a ``(users, n_items)`` score tensor.

    Parameters
    ----------
    scores : torch.Tensor
        ``(users, n_items)``; modified in place.
    seen_lists : sequence of int arrays or None
        Per row, item ids to exclude.
    allowed : torch.Tensor
        ``(n_items,)`` bool, the candidate items.
    n : int

    Returns
    -------
    items, scores, ranks : arrays ``(users, k)``
        ``ranks`` is 0 where fewer than ``k`` items remain (those entries must be dropped).

    Raises
    ------
    RuntimeError
        When the model produced NaN scores.
    """
    import torch

    if torch.isnan(scores).any():
        raise RuntimeError("deep scoring: the model produced NaN scores")
    n_items = scores.shape[1]
    scores[:, ~allowed] = float("-inf")
    rows: list[int] = []
    cols: list[int] = []
    for r, seen in enumerate(seen_lists):
        if seen is not None and len(seen):
            s = seen[(seen >= 0) & (seen < n_items)]
            rows.extend([r] * len(s))
            cols.extend(s.tolist())
    if rows:
        scores[torch.as_tensor(rows, device=scores.device), torch.as_tensor(cols, device=scores.device)] = (
            float("-inf")
        )
    k = min(n, int(allowed.sum()))
    top_scores: torch.Tensor | np.ndarray  # the tensor, then its float64 numpy copy
    top_scores, top_items = torch.topk(scores, k, dim=1)
    top_scores = top_scores.double().cpu().numpy()
    ok = np.isfinite(top_scores)
    ranks = np.where(ok, np.cumsum(ok, axis=1), 0)
    return top_items.cpu().numpy(), top_scores, ranks


def score_users(
    spark: SparkSession,
    model_path: str,
    users: DataFrame,
    seen: DataFrame,
    n: int,
    candidate_items: DataFrame | None = None,
    block_size: int = 256,
    use_gpu: bool = False,
) -> DataFrame:
    """Top-``n`` items of every user of ``users`` by the model at ``model_path``, seen items excluded.

    Parameters
    ----------
    spark : SparkSession
    model_path : str
        ``model.pt`` written by :func:`vidrec.models.deep.train.train_worker` (readable by the driver).
    users : DataFrame
        ``user_idx`` plus the model's ``score_columns`` (:func:`vidrec.models.deep.features.scoring_frame`).
    seen : DataFrame
        ``(user_idx, item_idx)`` pairs never to recommend.
    n : int
        List length, ``>= 1``.
    candidate_items : DataFrame, optional
        ``item_idx`` of the items that may be recommended (default: every item the model knows).
    block_size : int
        Users per scored block.
    use_gpu : bool
        Score on the executor's CUDA device.

    Returns
    -------
    DataFrame
        ``user_idx int, item_idx int, score double, rank int``.

    Raises
    ------
    ValueError
        When ``n < 1`` or ``users`` lacks a feature column.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    payload = read_model_bytes(model_path)
    model = _load(payload, "cpu")
    n_items = int(model.config["n_items"])
    columns = list(dict.fromkeys([COL_USER_IDX, *model.score_columns]))
    missing = [c for c in columns if c not in users.columns]
    if missing:
        raise ValueError(
            f"score_users: users lacks column(s) {missing} that model '{type(model).__name__}' scores from"
        )
    allowed = np.ones(n_items, dtype=bool)
    if candidate_items is not None:
        ids = np.asarray(
            [r[0] for r in candidate_items.select(COL_ITEM_IDX).distinct().collect()], dtype=np.int64
        )
        allowed[:] = False
        allowed[ids[(ids >= 0) & (ids < n_items)]] = True
    if not allowed.any():
        return spark.createDataFrame([], RECS_SCHEMA)
    bc = spark.sparkContext.broadcast((payload, allowed))
    device = "cuda" if use_gpu else "cpu"
    feature_cols = list(model.score_columns)
    seen_lists = seen.groupBy(COL_USER_IDX).agg(F.collect_list(COL_ITEM_IDX).alias(_SEEN))
    frame = users.select(*columns).join(seen_lists, COL_USER_IDX, "left")

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import torch

        torch.set_num_threads(1)  # one Spark task per core already
        blob, allowed_np = bc.value
        net = _load(blob, device)
        allowed_t = torch.as_tensor(allowed_np, device=device)
        with torch.no_grad():
            for batch in batches:
                for start in range(0, len(batch), block_size):
                    part = batch.iloc[start : start + block_size]
                    feats = _feature_tensors(part, feature_cols, device)
                    scores = net.score(feats).float()
                    seen_part = [None if s is None else np.asarray(s, dtype=np.int64) for s in part[_SEEN]]
                    items, top, ranks = top_n_block(scores, seen_part, allowed_t, n)
                    ok = ranks > 0
                    user_ids = np.repeat(part[COL_USER_IDX].to_numpy()[:, None], items.shape[1], axis=1)
                    yield pd.DataFrame(
                        {
                            COL_USER_IDX: user_ids[ok].astype(np.int32),
                            COL_ITEM_IDX: items[ok].astype(np.int32),
                            COL_SCORE: top[ok],
                            COL_RANK: ranks[ok].astype(np.int32),
                        }
                    )

    # pyspark's stub wants Iterable -> Iterable; Spark passes (and takes) an iterator
    return frame.mapInPandas(score, RECS_SCHEMA)  # type: ignore[arg-type]


def embed_users(spark: SparkSession, model_path: str, users: DataFrame, block_size: int = 1024) -> DataFrame:
    """``(user_idx int, embedding array<float>)``: the model's user embedding (Mult-VAE: the encoder mean).

    Parameters
    ----------
    users : DataFrame
        ``user_idx`` plus the model's ``score_columns``.

    Raises
    ------
    ValueError
        When the model has no ``embed`` method.
    """
    payload = read_model_bytes(model_path)
    model = _load(payload, "cpu")
    if not hasattr(model, "embed"):
        raise ValueError(f"model '{type(model).__name__}' has no user embedding")
    feature_cols = list(model.score_columns)
    columns = list(dict.fromkeys([COL_USER_IDX, *feature_cols]))
    bc = spark.sparkContext.broadcast(payload)

    def embed(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import torch

        torch.set_num_threads(1)
        net = _load(bc.value, "cpu")
        with torch.no_grad():
            for batch in batches:
                for start in range(0, len(batch), block_size):
                    part = batch.iloc[start : start + block_size]
                    vecs = net.embed(_feature_tensors(part, feature_cols, "cpu")).float().numpy()
                    yield pd.DataFrame(
                        {
                            COL_USER_IDX: part[COL_USER_IDX].to_numpy().astype(np.int32),
                            S.COL_EMBEDDING: list(vecs),
                        }
                    )

    # pyspark's stub wants Iterable -> Iterable; Spark passes (and takes) an iterator
    return users.select(*columns).mapInPandas(embed, EMBEDDINGS_SCHEMA)  # type: ignore[arg-type]
