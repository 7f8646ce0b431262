"""EASE: Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse Data", as a generator.

A closed-form item-item model: with ``X`` the binary user-item matrix of the training data,

    P = (XᵀX + λI)⁻¹,    B = I − P · diagMat(1 / diag(P))    (so diag(B) = 0),

and a user's scores are ``x_u · B``. Where the work happens:

- the Gram matrix ``XᵀX`` (item co-occurrence counts for a binary ``X``) on the driver: the positive
  pairs are collected once (Arrow) and counted as sparse CSR/CSC arrays in item blocks
  (:func:`gram_from_pairs`, item-kNN's :class:`~vidrec.models.itemknn.CoMatrix`): no shuffle of
  item pairs (a Spark self-join on the user shuffles ``sum over users of n_u²`` of them);
- the inversion on the driver with torch, on CUDA when available, float64 (:func:`ease_weights`);
  ``B`` is dense, ``n_items × n_items``, so the catalog is capped by ``ease.max_items``
  (:func:`check_catalog_size`);
- scoring in Spark: ``B`` broadcast, users scored in blocks by ``mapInPandas`` (one BLAS matmul per
  block), seen items masked, top-n per user by ``numpy.argpartition`` (:func:`top_n_block`).

Only items with a positive training interaction get a column of ``B`` (others would score 0 for
everyone); users with no positive training interaction get no list (the hybrid's cold-start list
serves them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import cast

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType

from vidrec.constants import (
    ALGO_EASE,
    COL_CONFIDENCE,
    COL_ITEM_IDX,
    COL_RANK,
    COL_SCORE,
    COL_USER_IDX,
)
from vidrec.models.base import Candidates, FitContext
from vidrec.models.itemknn import CoMatrix

#: Conf section (``ease.lambda``, ``ease.max_items``, ``ease.device``), for messages.
CONF_SECTION = "ease"
#: Driver memory estimate per catalog: n² float64 cells, about three live copies (Gram, P, B).
BYTES_PER_CELL = 8
WORKING_COPIES = 3

#: Output schema of every generator (see :mod:`vidrec.models.registry`).
CANDIDATES_SCHEMA = StructType(
    [
        StructField(COL_USER_IDX, IntegerType(), False),
        StructField(COL_ITEM_IDX, IntegerType(), False),
        StructField(COL_SCORE, DoubleType(), False),
        StructField(COL_RANK, IntegerType(), False),
    ]
)

# Private working columns.
_POS = "__ease_pos"
_HIST = "__ease_hist"
_EXCL = "__ease_excl"

log = logging.getLogger(__name__)


def check_catalog_size(n_items: int, max_items: int) -> None:
    """Refuse a catalog whose dense ``n_items × n_items`` matrices would not fit.

    Raises
    ------
    ValueError
        When ``n_items > max_items``, naming ``ease.max_items`` and the memory EASE would need
        (``n_items² × 8 bytes × ~3``).
    """
    if n_items > max_items:
        need_gb = n_items**2 * BYTES_PER_CELL * WORKING_COPIES / 1e9
        raise ValueError(
            f"EASE needs dense {n_items} x {n_items} matrices: {n_items} items exceeds "
            f"{CONF_SECTION}.max_items={max_items} (about {n_items}² × {BYTES_PER_CELL} bytes × "
            f"{WORKING_COPIES} = {need_gb:.1f} GB of driver memory); raise {CONF_SECTION}.max_items "
            "only on a driver with that memory, or restrict the catalog"
        )


def resolve_device(device: str | None = None) -> torch.device:
    """The torch device for the solve: ``None``/``"auto"`` picks CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def gram_from_pairs(
    users: np.ndarray, items: np.ndarray, max_items: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``XᵀX`` of the binary user-item matrix with a 1 at each ``(users[k], items[k])``.

    Counted in item blocks of a sparse :class:`~vidrec.models.itemknn.CoMatrix` (each block's rows of
    co-counts at most ``itemknn.BLOCK_CELLS`` cells), so memory beyond the result stays bounded.

    Parameters
    ----------
    users, items : numpy.ndarray
        Integer indexes of the pairs, one entry per non-zero of ``X`` (a repeated pair counts twice).
    max_items : int, optional
        Limit checked with :func:`check_catalog_size` before the dense matrix is allocated.

    Returns
    -------
    item_of_column : numpy.ndarray
        ``(n,)`` int64, the sorted distinct items: column ``c`` of the Gram is item ``item_of_column[c]``.
    gram : numpy.ndarray
        ``(n, n)`` float64, symmetric: ``gram[a, b]`` counts the users with both items.

    Raises
    ------
    ValueError
        When the distinct items exceed ``max_items``.
    """
    m = CoMatrix(users, items)
    if max_items is not None:
        check_catalog_size(m.n_items, max_items)
    gram = np.empty((m.n_items, m.n_items), dtype=np.float64)
    for lo, hi in m.item_blocks():
        gram[lo:hi] = m.co_counts(lo, hi)[0]
    return m.item_ids, gram


def ease_weights(gram: np.ndarray, lam: float, device: str | None = None) -> np.ndarray:
    """EASE's item-item weights ``B = I − P · diagMat(1/diag(P))``, ``P = (gram + λI)⁻¹``.

    Solved in float64 with torch (Cholesky: ``gram + λI`` is symmetric positive definite for λ > 0),
    on ``device`` (see :func:`resolve_device`).

    Parameters
    ----------
    gram : numpy.ndarray
        ``XᵀX``, square and symmetric.
    lam : float
        L2 regularisation λ > 0.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` or ``"auto"`` for CUDA when available.

    Returns
    -------
    numpy.ndarray
        ``B``, float64, same shape as ``gram``, zero diagonal.

    Raises
    ------
    ValueError
        When ``gram`` is not square or ``lam <= 0``.
    """
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"gram must be a square matrix, got shape {gram.shape}")
    if not lam > 0:
        raise ValueError(f"ease lambda must be > 0, got {lam}")
    dev = resolve_device(device)
    g = torch.as_tensor(np.asarray(gram), dtype=torch.float64, device=dev).clone()
    g.diagonal().add_(float(lam))
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))
    del g
    b = p / (-torch.diagonal(p))  # column j divided by -P_jj: -P·diagMat(1/diag(P))
    b.diagonal().zero_()  # I - P_jj/P_jj on the diagonal
    out = b.cpu().numpy()
    del p, b
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def _as_index_array(values: object) -> np.ndarray:
    if values is None or (isinstance(values, float) and np.isnan(values)):
        return np.empty(0, dtype=np.int64)
    return np.asarray(values, dtype=np.int64)


def _coordinates(per_row: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(row, column)`` index arrays of a dense matrix from per-row column lists."""
    rows = np.repeat(np.arange(len(per_row)), [len(c) for c in per_row])
    return rows, np.concatenate([*per_row, np.empty(0, dtype=np.int64)])


def top_n_block(
    history: Sequence[object], exclude: Sequence[object], weights: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score one block of users and take each one's top ``n`` unexcluded columns.

    Parameters
    ----------
    history : sequence of int arrays
        Per user, the columns of ``weights`` with a 1 in the user's row of ``X``.
    exclude : sequence of int arrays or None
        Per user, columns never to return.
    weights : numpy.ndarray
        ``B``, ``(m, m)``.
    n : int
        List length (shorter when fewer than ``n`` columns are allowed).

    Returns
    -------
    row, col, score, rank : numpy.ndarray
        Flat arrays: the user's position in the block, the column, its score (float64) and its
        rank 1..k; per user scores non-increasing, ties by lower column first.
    """
    b, m = len(history), weights.shape[0]
    hist = [_as_index_array(h) for h in history]
    excl = [_as_index_array(e) for e in exclude]
    x = np.zeros((b, m), dtype=weights.dtype)
    x[_coordinates(hist)] = 1.0
    scores = (x @ weights).astype(np.float64)
    scores[_coordinates(excl)] = -np.inf
    k = min(n, m)
    cols = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (b, 1))
    top = np.take_along_axis(scores, cols, axis=1)
    order = np.lexsort((cols, -top), axis=1)  # last key first: score descending, then column
    cols = np.take_along_axis(cols, order, axis=1)
    top = np.take_along_axis(top, order, axis=1)
    keep = np.isfinite(top)
    rows = np.broadcast_to(np.arange(b)[:, None], cols.shape)
    ranks = np.broadcast_to(np.arange(1, k + 1)[None, :], cols.shape)
    return rows[keep], cols[keep], top[keep], ranks[keep]


def score_users(
    history: DataFrame,
    exclude: DataFrame,
    weights: np.ndarray,
    item_of_column: np.ndarray,
    n: int,
    block_size: int,
) -> DataFrame:
    """Top-``n`` lists in Spark: ``x_u · B`` per user, blockwise, with ``B`` broadcast.

    Parameters
    ----------
    history : DataFrame
        ``(user_idx, __ease_pos)``: the users to score and their positive columns of ``B``.
    exclude : DataFrame
        ``(user_idx, __ease_pos)``: columns never to recommend to that user.
    weights : numpy.ndarray
        ``B``; broadcast as float32.
    item_of_column : numpy.ndarray
        ``item_idx`` of each column of ``B``.
    n, block_size : int
        List length; users per matmul block.

    Returns
    -------
    DataFrame
        :data:`CANDIDATES_SCHEMA`; users without history get no rows.
    """
    spark = history.sparkSession
    hist = history.groupBy(COL_USER_IDX).agg(F.collect_list(_POS).alias(_HIST))
    excl = exclude.groupBy(COL_USER_IDX).agg(F.collect_list(_POS).alias(_EXCL))
    lists = hist.join(excl, on=COL_USER_IDX, how="left")
    b_weights = spark.sparkContext.broadcast(np.ascontiguousarray(weights, dtype=np.float32))
    ids = np.asarray(item_of_column, dtype=np.int32)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        w = b_weights.value
        for pdf in batches:
            for start in range(0, len(pdf), block_size):
                chunk = pdf.iloc[start : start + block_size]
                rows, cols, top, ranks = top_n_block(list(chunk[_HIST]), list(chunk[_EXCL]), w, n)
                users = chunk[COL_USER_IDX].to_numpy(dtype=np.int32)
                yield pd.DataFrame(
                    {
                        COL_USER_IDX: users[rows],
                        COL_ITEM_IDX: ids[cols],
                        COL_SCORE: top,
                        COL_RANK: ranks.astype(np.int32),
                    }
                )

    # pyspark's stub wants Iterable -> Iterable; Spark passes (and takes) an iterator
    return lists.mapInPandas(score, schema=CANDIDATES_SCHEMA)  # type: ignore[arg-type]


def generate_ease(ctx: FitContext) -> Candidates:
    """Fit EASE on the positive training interactions and rank items for the target users.

    ``X`` is binary: 1 where ``confidence > 0`` in ``ctx.interactions``. Reads ``ease.lambda``
    (default 250), ``ease.max_items`` (default 50,000), ``ease.device`` (default: CUDA when
    available) and ``recommend.user_block_size``.

    Returns
    -------
    Candidates
        ``(user_idx, item_idx, score, rank)`` for the target users with a positive interaction; no
        pair of ``ctx.seen``; model version ``ease-<run_date>-lambda<λ>``.

    Raises
    ------
    ValueError
        When the training items exceed ``ease.max_items`` (λ > 0 is checked when conf loads).
    """
    lam, max_items, device = ctx.conf.ease.lambda_, ctx.conf.ease.max_items, ctx.conf.ease.device
    block_size = ctx.conf.recommend.user_block_size

    positives = ctx.interactions.where(F.col(COL_CONFIDENCE) > 0).select(COL_USER_IDX, COL_ITEM_IDX)
    t0 = time.perf_counter()
    pairs = cast("pd.DataFrame", positives.toPandas())
    item_of_column, gram = gram_from_pairs(
        pairs[COL_USER_IDX].to_numpy(), pairs[COL_ITEM_IDX].to_numpy(), max_items
    )
    log.info(
        "ease: Gram of %d positive pairs over %d items in %.1f s",
        len(pairs),
        len(item_of_column),
        time.perf_counter() - t0,
    )
    del pairs
    version = f"{ALGO_EASE}-{ctx.run_date}-lambda{lam:g}"
    if len(item_of_column) == 0:
        return Candidates(recs=ctx.spark.createDataFrame([], CANDIDATES_SCHEMA), model_version=version)
    columns = ctx.spark.createDataFrame(
        pd.DataFrame(
            {
                COL_ITEM_IDX: item_of_column.astype(np.int32),
                _POS: np.arange(len(item_of_column), dtype=np.int32),
            }
        )
    )
    x = positives.join(F.broadcast(columns), on=COL_ITEM_IDX).select(COL_USER_IDX, _POS)
    weights = ease_weights(gram, lam, device)
    del gram

    targets = ctx.target_users.select(COL_USER_IDX).distinct()
    history = x.join(targets, on=COL_USER_IDX, how="left_semi")
    exclude = (
        ctx.seen.select(COL_USER_IDX, COL_ITEM_IDX)
        .join(targets, on=COL_USER_IDX, how="left_semi")
        .join(F.broadcast(columns), on=COL_ITEM_IDX)
        .select(COL_USER_IDX, _POS)
    )
    recs = score_users(history, exclude, weights, item_of_column, ctx.n, block_size)
    return Candidates(recs=recs, model_version=version)
