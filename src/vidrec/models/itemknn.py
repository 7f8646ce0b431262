"""Item-based k-nearest neighbours from co-watching, and the ``gold/similar_items`` rows.

Similarity (:func:`item_neighbours`), in Spark: the positive interactions (``confidence > 0``) of each
user, capped to their ``max_items_per_user`` strongest (confidence, then most recent) so the
self-join on the user costs at most ``cap²`` pairs per user, give co-watch counts ``co(i, j)``, item
counts ``n_i`` and user counts ``n_u``; the similarity (``itemknn.similarity``) is either

- ``cosine`` (default), the shrunk cosine of the binary user vectors::

      sim(i, j) = co(i, j) / (sqrt(n_i * n_j) + shrink)

- or ``rp3beta`` (Paudel et al. 2017, "Updatable, Accurate, Diverse, and Scalable Recommendations for
  Interactive Applications"; the strongest graph baseline of Dacrema et al. 2019): the probability of
  the random walk item ``i`` -> user -> item ``j`` with each step's probability raised to ``alpha``,
  divided by the popularity of the destination raised to ``beta``::

      sim(i, j) = n_i^-alpha * n_j^-beta * sum over users u who watched both of n_u^-alpha

  (``beta`` > 0 lifts less popular neighbours; ``alpha`` < 1 flattens the walk),

kept when ``co(i, j) >= min_co_users``, and each item keeps its top ``neighbours`` items.

How the co-counts are computed (:func:`item_neighbours`): when the capped history has at most
``itemknn.blocked_max_pairs`` distinct (user, item) pairs (the default, 50M, is 400 MB of int32
indices), it is collected once as a sparse matrix ``X`` (users x items) in both row (CSR) and column
(CSC) order and broadcast; each Spark task then takes a block of items ``B`` and computes its rows of
``X^T X`` (all co-counts of ``B`` against the catalog) in numpy, scores them and keeps each row's top
``neighbours`` (:func:`neighbours_block`). Nothing of size "pairs of items" is ever shuffled. Above the
threshold (or with ``blocked_max_pairs: 0``) the co-counts are a Spark self-join on the user, whose
shuffle holds every co-watched pair (``sum over users of cap²``: 475M rows on the 20M bench set, where
the blocked path needs none). Both give the same neighbours (tested).

Scoring (:func:`score_users`): ``score(u, j) = sum over i in history(u) of sim(i, j) * confidence(u, i)``,
seen items excluded, top ``n`` per user. A user none of whose items has a neighbour gets no list. Up to
``itemknn.blocked_max_pairs`` neighbour rows, the neighbours are broadcast as sparse rows and each Spark
task scores blocks of users in numpy (:func:`score_block`); above it, a Spark join of the histories with
the neighbours (its shuffle holds every (user, history item, neighbour) triple). Same lists (tested).

:func:`similar_items` writes both kinds of similar items for ``gold/similar_items``: co-watch
(``algorithm = 'itemknn'``) and content (``algorithm = 'content'``, which covers items nobody watched).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, DoubleType, IntegerType, StringType, StructField, StructType

from vidrec.config.sections import SIMILARITIES, ItemKnnConf
from vidrec.constants import (
    ALGO_CONTENT,
    ALGO_ITEMKNN,
    COL_ALGORITHM,
    COL_CONFIDENCE,
    COL_ITEM,
    COL_ITEM_IDX,
    COL_LAST_TS,
    COL_RANK,
    COL_RUN_DATE,
    COL_SCORE,
    COL_SIMILAR_ITEM,
    COL_USER_IDX,
)
from vidrec.data.frames import materialise
from vidrec.models.base import Candidates, FitContext, model_version
from vidrec.models.content import COL_NEIGHBOUR_IDX, content_neighbours, item_vectors
from vidrec.models.sparse import expand_ranges, row_pointer, sorted_positions

if TYPE_CHECKING:
    import pandas as pd

#: ``gold/similar_items`` (docs/tables.md).
SIMILAR_ITEMS_SCHEMA = StructType(
    [
        StructField(COL_RUN_DATE, DateType(), False),
        StructField(COL_ITEM, StringType(), False),
        StructField(COL_RANK, IntegerType(), False),
        StructField(COL_SIMILAR_ITEM, StringType(), False),
        StructField(COL_SCORE, DoubleType(), False),
        StructField(COL_ALGORITHM, StringType(), False),
    ]
)

_I, _J, _CO, _NI, _NJ, _WU, _WALK = "_i", "_j", "_co", "_ni", "_nj", "_wu", "_walk"
#: Schema of :func:`item_neighbours`.
NEIGHBOURS_SCHEMA = f"{COL_ITEM_IDX} int, {COL_NEIGHBOUR_IDX} int, {COL_SCORE} double, {COL_RANK} int"
#: Schema of :func:`score_users`.
SCORES_SCHEMA = f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_SCORE} double, {COL_RANK} int"
_HIST, _SEEN = "_hist", "_seen"
#: Most co-counts one task holds densely (rows of the block x catalog items): 8M, 64 MB as int64.
BLOCK_CELLS = 8_000_000
#: Most expanded (item in block, user, co-watched item) triples one task materialises at once.
BLOCK_TRIPLES = 16_000_000

log = logging.getLogger(__name__)


def capped_history(interactions: DataFrame, max_items_per_user: int) -> DataFrame:
    """``(user_idx, item_idx, confidence, last_ts)``: positive interactions, at most
    ``max_items_per_user`` per user (highest confidence first, then most recent, then lowest id)."""
    w = Window.partitionBy(COL_USER_IDX).orderBy(
        F.col(COL_CONFIDENCE).desc(), F.col(COL_LAST_TS).desc_nulls_last(), F.col(COL_ITEM_IDX)
    )
    return (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .select(COL_USER_IDX, COL_ITEM_IDX, COL_CONFIDENCE, COL_LAST_TS)
        .withColumn("_pos", F.row_number().over(w))
        .where(F.col("_pos") <= max_items_per_user)
        .drop("_pos")
    )


@dataclass(frozen=True)
class Similarity:
    """The settings of one neighbour computation (see :func:`item_neighbours` for each)."""

    k: int
    shrink: float = 0.0
    min_co_users: int = 1
    kind: str = "cosine"
    alpha: float = 1.0
    beta: float = 0.5

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.kind not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.kind!r}")


def item_neighbours(
    history: DataFrame,
    k: int,
    shrink: float = 0.0,
    min_co_users: int = 1,
    similarity: str = "cosine",
    alpha: float = 1.0,
    beta: float = 0.5,
    *,
    blocked_max_pairs: int,
) -> DataFrame:
    """``(item_idx, neighbour_idx, score, rank)``: each item's top ``k`` co-watched items.

    Parameters
    ----------
    history : DataFrame
        ``(user_idx, item_idx)`` positive pairs (see :func:`capped_history`).
    k : int
        Neighbours kept per item.
    shrink : float
        ``cosine`` only: added to the denominator, so pairs seen by few users are pulled towards 0.
    min_co_users : int
        Pairs watched together by fewer users are dropped.
    similarity : str
        ``cosine`` or ``rp3beta`` (see the module docstring).
    alpha, beta : float
        ``rp3beta`` only: the walk's exponent and the popularity penalty of the destination.
    blocked_max_pairs : int
        With at most this many distinct pairs, co-counts are computed by item blocks over a broadcast
        sparse matrix (:func:`neighbours_block`); above it, or with 0, by a Spark self-join. The
        blocked path counts the pairs first (one Spark job) and collects them to the driver.

    Returns
    -------
    DataFrame
        :data:`NEIGHBOURS_SCHEMA`. ``cosine``: ``score = co / (sqrt(n_i * n_j) + shrink)``;
        ``rp3beta``: ``score = n_i^-alpha * n_j^-beta * sum_u n_u^-alpha``; ranks 1..k per item by
        score (ties: lower ``neighbour_idx`` first). Not symmetric for ``rp3beta``.
    """
    sim = Similarity(int(k), float(shrink), int(min_co_users), str(similarity), float(alpha), float(beta))
    if blocked_max_pairs < 0:
        raise ValueError(f"blocked_max_pairs must be >= 0, got {blocked_max_pairs}")
    pairs = history.select(F.col(COL_USER_IDX).cast("int"), F.col(COL_ITEM_IDX).cast("int")).distinct()
    if blocked_max_pairs > 0:
        t0 = time.perf_counter()
        pairs.persist()  # counted, then collected: computed once
        try:
            n_pairs = pairs.count()
            if n_pairs <= blocked_max_pairs:
                pdf: pd.DataFrame = pairs.toPandas()
                m = CoMatrix(pdf[COL_USER_IDX].to_numpy(), pdf[COL_ITEM_IDX].to_numpy())
                return _blocked_neighbours(pairs.sparkSession, m, t0, sim)
        finally:
            pairs.unpersist()
        log.info(
            "item neighbours: %d pairs > itemknn.blocked_max_pairs %d: Spark self-join",
            n_pairs,
            blocked_max_pairs,
        )
    return _joined_neighbours(pairs, sim)


def _joined_neighbours(pairs: DataFrame, sim: Similarity) -> DataFrame:
    """:func:`item_neighbours` as a Spark self-join of the distinct ``pairs`` on the user."""
    counts = pairs.groupBy(COL_ITEM_IDX).agg(F.count(F.lit(1)).alias("_n"))
    a = pairs.select(COL_USER_IDX, F.col(COL_ITEM_IDX).alias(_I))
    b = pairs.select(COL_USER_IDX, F.col(COL_ITEM_IDX).alias(_J))
    joined = a.join(b, COL_USER_IDX).where(F.col(_I) != F.col(_J))
    sums = [F.count(F.lit(1)).alias(_CO)]
    if sim.kind == "rp3beta":
        user_weight = pairs.groupBy(COL_USER_IDX).agg(
            F.pow(F.count(F.lit(1)).cast("double"), F.lit(-sim.alpha)).alias(_WU)
        )
        joined = joined.join(user_weight, COL_USER_IDX)
        sums.append(F.sum(_WU).alias(_WALK))
    co = (
        joined.groupBy(_I, _J)
        .agg(*sums)
        .where(F.col(_CO) >= sim.min_co_users)
        .join(counts.select(F.col(COL_ITEM_IDX).alias(_I), F.col("_n").alias(_NI)), _I)
        .join(counts.select(F.col(COL_ITEM_IDX).alias(_J), F.col("_n").alias(_NJ)), _J)
    )
    if sim.kind == "rp3beta":
        score = (
            F.col(_WALK)
            * F.pow(F.col(_NI).cast("double"), F.lit(-sim.alpha))
            * F.pow(F.col(_NJ).cast("double"), F.lit(-sim.beta))
        )
    else:
        score = F.col(_CO) / (F.sqrt(F.col(_NI) * F.col(_NJ)) + F.lit(sim.shrink))
    sims = co.select(
        F.col(_I).alias(COL_ITEM_IDX), F.col(_J).alias(COL_NEIGHBOUR_IDX), score.alias(COL_SCORE)
    )
    w = Window.partitionBy(COL_ITEM_IDX).orderBy(F.col(COL_SCORE).desc(), F.col(COL_NEIGHBOUR_IDX))
    ranked = sims.withColumn(COL_RANK, F.row_number().over(w).cast("int")).where(F.col(COL_RANK) <= sim.k)
    return ranked.select(
        F.col(COL_ITEM_IDX).cast("int"), F.col(COL_NEIGHBOUR_IDX).cast("int"), COL_SCORE, COL_RANK
    )


class CoMatrix:
    """The positive pairs as a sparse 0/1 matrix ``X`` (users x items), in both orders.

    Attributes
    ----------
    item_ids : (I,) int64 array, sorted: the item id of each column.
    csr_ptr, csr_items : row order: user row ``u``'s columns are ``csr_items[csr_ptr[u]:csr_ptr[u+1]]``.
    csc_ptr, csc_users : column order: column ``c``'s user rows are ``csc_users[csc_ptr[c]:csc_ptr[c+1]]``.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        _, rows = np.unique(users, return_inverse=True)
        self.item_ids, cols = np.unique(items, return_inverse=True)
        n_users, n_items = int(rows.max(initial=-1)) + 1, len(self.item_ids)
        self.csr_items = cols[np.lexsort((cols, rows))].astype(np.int32)
        self.csr_ptr = row_pointer(rows, n_users)
        self.csc_users = rows[np.lexsort((rows, cols))].astype(np.int32)
        self.csc_ptr = row_pointer(cols, n_items)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_degree(self) -> np.ndarray:
        """Items per user row (``n_u``)."""
        return np.diff(self.csr_ptr)

    def item_degree(self) -> np.ndarray:
        """Users per item column (``n_i``)."""
        return np.diff(self.csc_ptr)

    def item_blocks(
        self, max_cells: int | None = None, max_triples: int | None = None
    ) -> list[tuple[int, int]]:
        """Contiguous column ranges ``[lo, hi)`` covering all columns, each holding at most
        ``max_cells`` co-counts (``(hi - lo) * n_items``, default :data:`BLOCK_CELLS`) and at most
        ``max_triples`` expanded triples (default :data:`BLOCK_TRIPLES`; a single column above it is a
        block of its own)."""
        max_cells = BLOCK_CELLS if max_cells is None else max_cells
        max_triples = BLOCK_TRIPLES if max_triples is None else max_triples
        rows_cap = max(1, max_cells // max(1, self.n_items))
        deg = self.user_degree()
        triples: np.ndarray | list[int] = (
            np.add.reduceat(deg[self.csc_users], self.csc_ptr[:-1]) if len(self.csc_users) else []
        )
        triples = np.where(np.diff(self.csc_ptr) > 0, triples, 0)
        blocks, lo, acc = [], 0, 0
        for c in range(self.n_items):
            t = int(triples[c])
            if c > lo and (c - lo >= rows_cap or acc + t > max_triples):
                blocks.append((lo, c))
                lo, acc = c, 0
            acc += t
        if self.n_items:
            blocks.append((lo, self.n_items))
        return blocks

    def co_counts(self, lo: int, hi: int, user_weight: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Rows ``lo..hi-1`` of ``X^T X`` as a dense ``(hi - lo, n_items)`` int64 array (the diagonal
        included), and with ``user_weight`` also rows of ``X^T diag(user_weight) X`` (float64)."""
        rows = hi - lo
        first, last = int(self.csc_ptr[lo]), int(self.csc_ptr[hi])
        users = self.csc_users[first:last].astype(np.int64)
        local = np.repeat(np.arange(rows, dtype=np.int64), np.diff(self.csc_ptr[lo : hi + 1]))
        starts = self.csr_ptr[users]
        deg = self.csr_ptr[users + 1] - starts
        js = self.csr_items[expand_ranges(starts, deg)]
        key = np.repeat(local * self.n_items, deg) + js
        size = rows * self.n_items
        co = np.bincount(key, minlength=size).reshape(rows, self.n_items)
        if user_weight is None:
            return (co,)
        walk = np.bincount(key, weights=np.repeat(user_weight[users], deg), minlength=size)
        return co, walk.reshape(rows, self.n_items)


def top_k_rows(score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``k`` highest finite scores, ties to the lower column.

    Returns
    -------
    tuple of arrays
        ``(row, col, score, rank)``, rows ascending, ranks 1.. per row; ``-inf`` entries are never kept.
    """
    n_rows, n_cols = score.shape
    if n_rows == 0 or n_cols == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0), empty
    kk = min(k, n_cols)
    if kk < n_cols:
        part = np.argpartition(-score, kk - 1, axis=1)[:, :kk]
        kth = np.take_along_axis(score, part, axis=1).min(axis=1)
    else:
        kth = np.full(n_rows, -np.inf)
    # candidates: everything at or above the row's k-th score (so ties at the boundary are all seen)
    r, c = np.nonzero((score >= kth[:, None]) & np.isfinite(score))
    v = score[r, c]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    starts = np.searchsorted(r, r, side="left")
    rank = np.arange(len(r)) - starts + 1
    keep = rank <= k
    return r[keep], c[keep], v[keep], rank[keep]


def neighbours_block(m: CoMatrix, lo: int, hi: int, sim: Similarity) -> pa.RecordBatch:
    """:data:`NEIGHBOURS_SCHEMA` rows of the items in columns ``lo..hi-1`` of ``m``: the same
    similarity, filter and ranking as the Spark self-join of :func:`item_neighbours`."""
    n_i = m.item_degree().astype(np.int64)
    if sim.kind == "rp3beta":
        weight = np.power(m.user_degree().astype(np.float64), -sim.alpha)
        co, walk = m.co_counts(lo, hi, weight)
        score = (
            walk
            * np.power(n_i[lo:hi].astype(np.float64), -sim.alpha)[:, None]
            * np.power(n_i.astype(np.float64), -sim.beta)[None, :]
        )
    else:
        (co,) = m.co_counts(lo, hi)
        score = co / (np.sqrt((n_i[lo:hi, None] * n_i[None, :]).astype(np.float64)) + sim.shrink)
    keep = co >= max(1, sim.min_co_users)
    keep[np.arange(hi - lo), np.arange(lo, hi)] = False  # an item is not its own neighbour
    score = np.where(keep, score, -np.inf)
    r, c, v, rank = top_k_rows(score, sim.k)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(m.item_ids[lo + r].astype(np.int32)),
            pa.array(m.item_ids[c].astype(np.int32)),
            pa.array(v.astype(np.float64)),
            pa.array(rank.astype(np.int32)),
        ],
        names=[COL_ITEM_IDX, COL_NEIGHBOUR_IDX, COL_SCORE, COL_RANK],
    )


def _blocked_neighbours(spark: SparkSession, m: CoMatrix, t0: float, sim: Similarity) -> DataFrame:
    """:func:`item_neighbours` by item blocks over a broadcast :class:`CoMatrix` (collected since ``t0``)."""
    blocks = m.item_blocks()
    log.info(
        "item neighbours: %d pairs (%d users x %d items) collected in %.1f s; co-counts in %d item blocks",
        len(m.csr_items),
        len(m.csr_ptr) - 1,
        m.n_items,
        time.perf_counter() - t0,
        len(blocks),
    )
    if not blocks:
        return spark.createDataFrame([], NEIGHBOURS_SCHEMA)
    bc = spark.sparkContext.broadcast(m)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        matrix = bc.value
        for batch in batches:
            for lo, hi in zip(batch.column("lo").to_pylist(), batch.column("hi").to_pylist(), strict=True):
                yield neighbours_block(matrix, int(lo), int(hi), sim)

    ranges = spark.createDataFrame(spark.sparkContext.parallelize(blocks, len(blocks)), "lo long, hi long")
    # pyspark's stub wants Iterable -> Iterable; Spark passes (and takes) an iterator
    return ranges.mapInArrow(run, NEIGHBOURS_SCHEMA)  # type: ignore[arg-type]


def neighbours_from_conf(history: DataFrame, k: int, kc: ItemKnnConf) -> DataFrame:
    """:func:`item_neighbours` with the similarity settings of an ``itemknn`` section ``kc``."""
    return item_neighbours(
        history,
        k,
        float(kc.shrink),
        int(kc.min_co_users),
        str(kc.similarity),
        float(kc.alpha),
        float(kc.beta),
        blocked_max_pairs=int(kc.blocked_max_pairs),
    )


def rank_per_user(scores: DataFrame, n: int) -> DataFrame:
    """Rank ``(user_idx, item_idx, score)`` rows 1..n per user by score (ties: lower item first)."""
    w = Window.partitionBy(COL_USER_IDX).orderBy(F.col(COL_SCORE).desc(), F.col(COL_ITEM_IDX))
    return (
        scores.withColumn(COL_RANK, F.row_number().over(w).cast("int"))
        .where(F.col(COL_RANK) <= n)
        .select(
            F.col(COL_USER_IDX).cast("int").alias(COL_USER_IDX),
            F.col(COL_ITEM_IDX).cast("int").alias(COL_ITEM_IDX),
            F.col(COL_SCORE).cast("double").alias(COL_SCORE),
            COL_RANK,
        )
    )


class NeighbourRows:
    """The neighbours table as sparse rows: item ``item_ids[r]``'s neighbours are the columns
    ``cols[ptr[r]:ptr[r+1]]`` (positions in ``item_ids``) with similarities ``sims[...]``.

    ``item_ids`` (sorted) holds every item that has or is a neighbour: the columns a list can reach.
    """

    def __init__(self, items: np.ndarray, neighbours: np.ndarray, sims: np.ndarray) -> None:
        items = np.asarray(items, dtype=np.int64)
        neighbours = np.asarray(neighbours, dtype=np.int64)
        self.item_ids = np.unique(np.concatenate([items, neighbours]))
        rows = np.searchsorted(self.item_ids, items)
        order = np.argsort(rows, kind="stable")
        self.ptr = row_pointer(rows, len(self.item_ids))
        self.cols = np.searchsorted(self.item_ids, neighbours)[order].astype(np.int32)
        self.sims = np.asarray(sims, dtype=np.float64)[order]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def positions(self, items: np.ndarray) -> np.ndarray:
        """Each of ``items``' row in ``item_ids``, ``-1`` for an item that is not there."""
        return sorted_positions(self.item_ids, items)


def score_block(
    m: NeighbourRows,
    hist_rows: np.ndarray,
    hist_pos: np.ndarray,
    hist_conf: np.ndarray,
    seen_rows: np.ndarray,
    seen_items: np.ndarray,
    n_users: int,
    n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The top ``n`` items of each of ``n_users`` users from their histories (flat ``(row, position of
    the item in m.item_ids or -1, confidence)`` arrays): ``score(u, j) = sum over i of sim(i, j) *
    confidence(u, i)`` over the items ``j`` some history item reaches, seen ``(row, item)`` pairs
    excluded.

    Returns
    -------
    row, item_idx, score, rank : numpy.ndarray
        Ranks 1..n per row by score, ties to the lower item (:func:`top_k_rows`).
    """
    cols = m.n_items
    has = np.asarray(hist_pos) >= 0
    rows, pos = np.asarray(hist_rows)[has], np.asarray(hist_pos)[has]
    conf = np.asarray(hist_conf, dtype=np.float64)[has]
    starts = m.ptr[pos]
    deg = m.ptr[pos + 1] - starts
    reach = expand_ranges(starts, deg)
    key = np.repeat(rows.astype(np.int64) * cols, deg) + m.cols[reach]
    size = n_users * cols
    score = np.bincount(key, weights=np.repeat(conf, deg) * m.sims[reach], minlength=size)
    reached = np.bincount(key, minlength=size) > 0
    score = np.where(reached, score, -np.inf).reshape(n_users, cols)
    seen_pos = m.positions(seen_items)
    known = seen_pos >= 0
    score[np.asarray(seen_rows)[known], seen_pos[known]] = -np.inf
    r, c, v, rank = top_k_rows(score, n)
    return r, m.item_ids[c], v, rank


def score_users(
    history: DataFrame, neighbours: DataFrame, seen: DataFrame, n: int, *, blocked_max_pairs: int
) -> DataFrame:
    """Top-``n`` unseen items per user of ``history`` by ``sum_i sim(i, j) * confidence(u, i)``.

    With at most ``blocked_max_pairs`` neighbour rows, the neighbours are collected and broadcast as
    sparse rows (:class:`NeighbourRows`) and each Spark task scores blocks of users in numpy
    (:func:`score_block`, at most ``BLOCK_CELLS`` scores and ``BLOCK_TRIPLES`` triples at a time):
    nothing is shuffled but the per-user lists. Above it (or with 0) the histories are joined with the
    neighbours in Spark, whose shuffle holds every (user, history item, neighbour) triple: ``sum over
    users of min(n_u, cap) * neighbours``. Both give the same lists (tested).

    Parameters
    ----------
    history : DataFrame
        ``(user_idx, item_idx, confidence)`` of the users to serve.
    neighbours : DataFrame
        ``(item_idx, neighbour_idx, score)`` from :func:`item_neighbours`.
    seen : DataFrame
        ``(user_idx, item_idx)`` never to recommend.
    n : int
    blocked_max_pairs : int
        ``itemknn.blocked_max_pairs``: the most neighbour rows the driver collects and broadcasts.

    Returns
    -------
    DataFrame
        ``(user_idx, item_idx, score, rank)``, ranks 1..n by score (ties: lower item first); a user
        none of whose items has a neighbour gets no row.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if blocked_max_pairs <= 0 or neighbours.count() > blocked_max_pairs:
        return joined_scores(history, neighbours, seen, n)
    return _blocked_scores(history, neighbours, seen, n)


def joined_scores(history: DataFrame, neighbours: DataFrame, seen: DataFrame, n: int) -> DataFrame:
    """:func:`score_users` as a Spark join of the histories with the neighbours."""
    scores = (
        history.select(COL_USER_IDX, COL_ITEM_IDX, COL_CONFIDENCE)
        .join(
            neighbours.select(COL_ITEM_IDX, COL_NEIGHBOUR_IDX, F.col(COL_SCORE).alias("_sim")), COL_ITEM_IDX
        )
        .groupBy(COL_USER_IDX, F.col(COL_NEIGHBOUR_IDX).alias(COL_ITEM_IDX))
        .agg(F.sum(F.col("_sim") * F.col(COL_CONFIDENCE)).alias(COL_SCORE))
        .join(seen.select(COL_USER_IDX, COL_ITEM_IDX), [COL_USER_IDX, COL_ITEM_IDX], "left_anti")
    )
    return rank_per_user(scores, n)


def _blocked_scores(history: DataFrame, neighbours: DataFrame, seen: DataFrame, n: int) -> DataFrame:
    """:func:`score_users` by blocks of users over the broadcast neighbours."""
    spark = history.sparkSession
    nb = cast("pd.DataFrame", neighbours.select(COL_ITEM_IDX, COL_NEIGHBOUR_IDX, COL_SCORE).toPandas())
    m = NeighbourRows(nb[COL_ITEM_IDX].to_numpy(), nb[COL_NEIGHBOUR_IDX].to_numpy(), nb[COL_SCORE].to_numpy())
    del nb
    bc = spark.sparkContext.broadcast(m)
    hist = history.groupBy(COL_USER_IDX).agg(
        F.collect_list(
            F.struct(COL_ITEM_IDX, F.col(COL_CONFIDENCE).cast("double").alias(COL_CONFIDENCE))
        ).alias(_HIST)
    )
    seen_lists = (
        seen.join(hist.select(COL_USER_IDX), COL_USER_IDX, "left_semi")
        .groupBy(COL_USER_IDX)
        .agg(F.collect_list(COL_ITEM_IDX).alias(_SEEN))
    )
    lists = hist.join(seen_lists, COL_USER_IDX, "left")
    max_users = max(1, BLOCK_CELLS // max(1, m.n_items))  # a block's dense scores: at most BLOCK_CELLS

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows_m = bc.value
        for batch in batches:
            yield from score_batch(rows_m, batch, n, max_users)

    # pyspark's stub wants Iterable -> Iterable; Spark passes (and takes) an iterator
    return lists.mapInArrow(run, SCORES_SCHEMA)  # type: ignore[arg-type]


def user_blocks(triples: np.ndarray, max_users: int, max_triples: int) -> list[tuple[int, int]]:
    """Contiguous user ranges ``[lo, hi)`` covering ``len(triples)`` users, each of at most
    ``max_users`` users and ``max_triples`` expanded triples (a single user above it is a block)."""
    blocks, lo, acc = [], 0, 0
    for u, t in enumerate(np.asarray(triples, dtype=np.int64).tolist()):
        if u > lo and (u - lo >= max_users or acc + t > max_triples):
            blocks.append((lo, u))
            lo, acc = u, 0
        acc += t
    if len(triples):
        blocks.append((lo, len(triples)))
    return blocks


def score_batch(m: NeighbourRows, batch: pa.RecordBatch, n: int, max_users: int) -> Iterator[pa.RecordBatch]:
    """:func:`score_block` over one Arrow batch of ``(user_idx, [(item_idx, confidence)], [item_idx])``,
    by blocks of at most ``max_users`` users and ``BLOCK_TRIPLES`` (user, history item, neighbour)
    triples, so a task's memory stays bounded whatever the histories."""
    users = batch.column(COL_USER_IDX).to_numpy(zero_copy_only=False)
    hist, seen = batch.column(_HIST), batch.column(_SEEN)
    h_off = np.concatenate([[0], np.cumsum(hist.value_lengths().fill_null(0).to_numpy(zero_copy_only=False))])
    s_off = np.concatenate([[0], np.cumsum(seen.value_lengths().fill_null(0).to_numpy(zero_copy_only=False))])
    flat = hist.flatten()
    items = flat.field(COL_ITEM_IDX).to_numpy(zero_copy_only=False)
    conf = flat.field(COL_CONFIDENCE).to_numpy(zero_copy_only=False)
    seen_items = seen.flatten().to_numpy(zero_copy_only=False)
    hist_rows = np.repeat(np.arange(len(users)), np.diff(h_off))
    seen_rows = np.repeat(np.arange(len(users)), np.diff(s_off))
    pos = m.positions(items)
    deg = np.where(pos >= 0, m.ptr[pos + 1] - m.ptr[np.maximum(pos, 0)], 0)
    triples = np.bincount(hist_rows, weights=deg, minlength=len(users))
    for lo, hi in user_blocks(triples, max_users, BLOCK_TRIPLES):
        hs, ss = slice(h_off[lo], h_off[hi]), slice(s_off[lo], s_off[hi])
        r, top, v, rank = score_block(
            m, hist_rows[hs] - lo, pos[hs], conf[hs], seen_rows[ss] - lo, seen_items[ss], hi - lo, n
        )
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(users[lo + r].astype(np.int32)),
                pa.array(top.astype(np.int32)),
                pa.array(v.astype(np.float64)),
                pa.array(rank.astype(np.int32)),
            ],
            names=[COL_USER_IDX, COL_ITEM_IDX, COL_SCORE, COL_RANK],
        )


def generate_itemknn(ctx: FitContext) -> Candidates:
    """Item-kNN lists for the target users with a positive interaction.

    Artifacts: ``neighbours`` ``(item_idx, neighbour_idx, score, rank)``, and ``history`` (the capped
    histories the neighbours and the lists read: cached, so released with the other artifacts).
    """
    kc = ctx.conf.itemknn
    history = capped_history(ctx.interactions, int(kc.max_items_per_user)).cache()
    # checkpointed: the explanations and the similar items read them again (see content.py)
    neighbours = materialise(neighbours_from_conf(history, int(kc.neighbours), kc))
    targets = history.join(ctx.target_users.select(COL_USER_IDX).distinct(), COL_USER_IDX, "left_semi")
    recs = score_users(targets, neighbours, ctx.seen, ctx.n, blocked_max_pairs=int(kc.blocked_max_pairs))
    artifacts = {"neighbours": neighbours, "history": history}
    return Candidates(recs, model_version(ALGO_ITEMKNN, ctx.run_date, kc), artifacts)


def similar_items(
    ctx: FitContext,
    n: int,
    run_date: dt.date,
    neighbours: DataFrame | None = None,
    vectors: DataFrame | None = None,
) -> DataFrame:
    """``gold/similar_items`` rows: co-watch neighbours (``itemknn``) and content neighbours (``content``).

    Parameters
    ----------
    ctx : FitContext
        Its ``interactions`` (co-watch), ``items`` (content vectors, ids) and ``conf`` are used.
    n : int
        Similar items per item and algorithm.
    run_date : datetime.date
    neighbours : DataFrame, optional
        ``(item_idx, neighbour_idx, score)`` already computed (the ``neighbours`` artifact of
        :func:`generate_itemknn`); default: computed here.
    vectors : DataFrame, optional
        ``(item_idx, features)`` (the ``item_vectors`` artifact of the content generator); default:
        computed here.

    Returns
    -------
    DataFrame
        :data:`SIMILAR_ITEMS_SCHEMA`; ranks 1..n per (item, algorithm), scores non-increasing. An
        item without co-watches has no ``itemknn`` rows; one without metadata no ``content`` rows.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    kc = ctx.conf.itemknn
    if neighbours is None:
        history = capped_history(ctx.interactions, int(kc.max_items_per_user))
        neighbours = neighbours_from_conf(history, n, kc)
    knn = rank_per_user(
        neighbours.select(
            F.col(COL_ITEM_IDX).alias(COL_USER_IDX), F.col(COL_NEIGHBOUR_IDX).alias(COL_ITEM_IDX), COL_SCORE
        ),
        n,
    ).withColumn(COL_ALGORITHM, F.lit(ALGO_ITEMKNN))
    if vectors is None:
        vectors = item_vectors(ctx.items, ctx.conf.content)
    block = ctx.conf.recommend.user_block_size
    content = content_neighbours(ctx.spark, vectors, n, block_size=block).select(
        F.col(COL_ITEM_IDX).alias(COL_USER_IDX),
        F.col(COL_NEIGHBOUR_IDX).alias(COL_ITEM_IDX),
        COL_SCORE,
        COL_RANK,
        F.lit(ALGO_CONTENT).alias(COL_ALGORITHM),
    )
    ids = ctx.items.select(COL_ITEM_IDX, COL_ITEM).dropDuplicates([COL_ITEM_IDX])
    src = ids.select(F.col(COL_ITEM_IDX).alias(COL_USER_IDX), F.col(COL_ITEM).alias("_src"))
    dst = ids.select(COL_ITEM_IDX, F.col(COL_ITEM).alias("_dst"))
    rows = knn.unionByName(content).join(src, COL_USER_IDX).join(dst, COL_ITEM_IDX)
    return rows.select(
        F.lit(run_date).cast("date").alias(COL_RUN_DATE),
        F.col("_src").alias(COL_ITEM),
        F.col(COL_RANK).cast("int").alias(COL_RANK),
        F.col("_dst").alias(COL_SIMILAR_ITEM),
        F.col(COL_SCORE).cast("double").alias(COL_SCORE),
        F.col(COL_ALGORITHM),
    )
