"""Item-based k-nearest neighbours from co-watching, and the ``gold/similar_items`` rows.

Similarity (:func:`item_neighbours`), in Spark: the positive interactions (``confidence > 0``) of each
user, capped to their ``max_items_per_user`` strongest (confidence, then most recent) so the
self-join on the user costs at most ``cap²`` pairs per user, give co-watch counts ``co(i, j)`` and
item counts ``n_i``; the similarity is the shrunk cosine of the binary user vectors

    sim(i, j) = co(i, j) / (sqrt(n_i * n_j) + shrink),

kept when ``co(i, j) >= min_co_users``, and each item keeps its top ``neighbours`` items.

Scoring (:func:`score_users`): ``score(u, j) = sum over i in history(u) of sim(i, j) * confidence(u, i)``,
seen items excluded, top ``n`` per user. A user none of whose items has a neighbour gets no list.

:func:`similar_items` writes both kinds of similar items for ``gold/similar_items``: co-watch
(``algorithm = 'itemknn'``) and content (``algorithm = 'content'``, which covers items nobody watched).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, DoubleType, IntegerType, StringType, StructField, StructType

from vidrec.als import model_version
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
from vidrec.content import COL_NEIGHBOUR_IDX, content_conf, content_neighbours, item_vectors
from vidrec.generators import Candidates, FitContext, register

#: Conf section of this module.
CONF_SECTION = "itemknn"
#: Defaults of ``itemknn.*``.
DEFAULTS: dict[str, Any] = {
    "neighbours": 50,
    "max_items_per_user": 200,
    "shrink": 5.0,
    "min_co_users": 1,
}
#: ``gold/similar_items`` (DESIGN.md).
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

_I, _J, _CO, _NI, _NJ = "_i", "_j", "_co", "_ni", "_nj"


def itemknn_conf(conf: Mapping[str, Any]) -> dict[str, Any]:
    """The ``itemknn`` section of ``conf`` over :data:`DEFAULTS`.

    Raises
    ------
    ValueError
        On ``neighbours < 1``, ``max_items_per_user < 1``, ``shrink < 0`` or ``min_co_users < 1``.
    """
    out = {**DEFAULTS, **dict(conf.get(CONF_SECTION) or {})}
    for key, low in (("neighbours", 1), ("max_items_per_user", 1), ("min_co_users", 1), ("shrink", 0)):
        if float(out[key]) < low:
            raise ValueError(f"itemknn.{key} must be >= {low}, got {out[key]}")
    return out


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


def item_neighbours(history: DataFrame, k: int, shrink: float = 0.0, min_co_users: int = 1) -> DataFrame:
    """``(item_idx, neighbour_idx, score, rank)``: each item's top ``k`` co-watched items.

    Parameters
    ----------
    history : DataFrame
        ``(user_idx, item_idx)`` positive pairs (see :func:`capped_history`).
    k : int
        Neighbours kept per item.
    shrink : float
        Added to the cosine's denominator: pairs seen by few users are pulled towards 0.
    min_co_users : int
        Pairs watched together by fewer users are dropped.

    Returns
    -------
    DataFrame
        ``score = co / (sqrt(n_i * n_j) + shrink)``, ranks 1..k per item by score (ties: lower
        ``neighbour_idx`` first).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pairs = history.select(COL_USER_IDX, COL_ITEM_IDX).distinct()
    counts = pairs.groupBy(COL_ITEM_IDX).agg(F.count(F.lit(1)).alias("_n"))
    a = pairs.select(COL_USER_IDX, F.col(COL_ITEM_IDX).alias(_I))
    b = pairs.select(COL_USER_IDX, F.col(COL_ITEM_IDX).alias(_J))
    co = (
        a.join(b, COL_USER_IDX)
        .where(F.col(_I) != F.col(_J))
        .groupBy(_I, _J)
        .agg(F.count(F.lit(1)).alias(_CO))
        .where(F.col(_CO) >= min_co_users)
    )
    sims = (
        co.join(counts.select(F.col(COL_ITEM_IDX).alias(_I), F.col("_n").alias(_NI)), _I)
        .join(counts.select(F.col(COL_ITEM_IDX).alias(_J), F.col("_n").alias(_NJ)), _J)
        .select(
            F.col(_I).alias(COL_ITEM_IDX),
            F.col(_J).alias(COL_NEIGHBOUR_IDX),
            (F.col(_CO) / (F.sqrt(F.col(_NI) * F.col(_NJ)) + F.lit(float(shrink)))).alias(COL_SCORE),
        )
    )
    w = Window.partitionBy(COL_ITEM_IDX).orderBy(F.col(COL_SCORE).desc(), F.col(COL_NEIGHBOUR_IDX))
    return sims.withColumn(COL_RANK, F.row_number().over(w).cast("int")).where(F.col(COL_RANK) <= k)


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


def score_users(history: DataFrame, neighbours: DataFrame, seen: DataFrame, n: int) -> DataFrame:
    """Top-``n`` unseen items per user of ``history`` by ``sum_i sim(i, j) * confidence(u, i)``.

    Parameters
    ----------
    history : DataFrame
        ``(user_idx, item_idx, confidence)`` of the users to serve.
    neighbours : DataFrame
        ``(item_idx, neighbour_idx, score)`` from :func:`item_neighbours`.
    seen : DataFrame
        ``(user_idx, item_idx)`` never to recommend.
    n : int
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
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


@register(ALGO_ITEMKNN)
def generate_itemknn(ctx: FitContext) -> Candidates:
    """Item-kNN lists for the target users with a positive interaction.

    Artifacts: ``neighbours`` ``(item_idx, neighbour_idx, score, rank)``.
    """
    kc = itemknn_conf(ctx.conf)
    history = capped_history(ctx.interactions, int(kc["max_items_per_user"])).cache()
    neighbours = item_neighbours(history, int(kc["neighbours"]), float(kc["shrink"]), int(kc["min_co_users"]))
    neighbours = neighbours.cache()
    targets = history.join(ctx.target_users.select(COL_USER_IDX).distinct(), COL_USER_IDX, "left_semi")
    recs = score_users(targets, neighbours, ctx.seen, ctx.n)
    return Candidates(recs, model_version(ALGO_ITEMKNN, ctx.run_date, kc), {"neighbours": neighbours})


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
    kc = itemknn_conf(ctx.conf)
    if neighbours is None:
        history = capped_history(ctx.interactions, int(kc["max_items_per_user"]))
        neighbours = item_neighbours(history, n, float(kc["shrink"]), int(kc["min_co_users"]))
    knn = rank_per_user(
        neighbours.select(
            F.col(COL_ITEM_IDX).alias(COL_USER_IDX), F.col(COL_NEIGHBOUR_IDX).alias(COL_ITEM_IDX), COL_SCORE
        ),
        n,
    ).withColumn(COL_ALGORITHM, F.lit(ALGO_ITEMKNN))
    if vectors is None:
        vectors = item_vectors(ctx.items, content_conf(ctx.conf))
    block = int(ctx.conf.get("recommend", {}).get("user_block_size", 2048))
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
