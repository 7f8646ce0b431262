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
    "similarity": "cosine",
    "neighbours": 50,
    "max_items_per_user": 200,
    "shrink": 5.0,
    "min_co_users": 1,
    "alpha": 1.0,
    "beta": 0.5,
}
#: Values of ``itemknn.similarity``.
SIMILARITIES = ("cosine", "rp3beta")
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

_I, _J, _CO, _NI, _NJ, _WU, _WALK = "_i", "_j", "_co", "_ni", "_nj", "_wu", "_walk"


def itemknn_conf(conf: Mapping[str, Any]) -> dict[str, Any]:
    """The ``itemknn`` section of ``conf`` over :data:`DEFAULTS`.

    Raises
    ------
    ValueError
        On an unknown ``similarity``, ``neighbours < 1``, ``max_items_per_user < 1``, ``shrink < 0``,
        ``min_co_users < 1``, ``alpha <= 0`` or ``beta < 0``.
    """
    out = {**DEFAULTS, **dict(conf.get(CONF_SECTION) or {})}
    if out["similarity"] not in SIMILARITIES:
        raise ValueError(f"itemknn.similarity must be one of {SIMILARITIES}, got {out['similarity']!r}")
    checks = (("neighbours", 1), ("max_items_per_user", 1), ("min_co_users", 1), ("shrink", 0), ("beta", 0))
    for key, low in checks:
        if float(out[key]) < low:
            raise ValueError(f"itemknn.{key} must be >= {low}, got {out[key]}")
    if not float(out["alpha"]) > 0:
        raise ValueError(f"itemknn.alpha must be > 0, got {out['alpha']}")
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


def item_neighbours(
    history: DataFrame,
    k: int,
    shrink: float = 0.0,
    min_co_users: int = 1,
    similarity: str = "cosine",
    alpha: float = 1.0,
    beta: float = 0.5,
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

    Returns
    -------
    DataFrame
        ``cosine``: ``score = co / (sqrt(n_i * n_j) + shrink)``; ``rp3beta``: ``score = n_i^-alpha *
        n_j^-beta * sum_u n_u^-alpha``; ranks 1..k per item by score (ties: lower ``neighbour_idx``
        first). Not symmetric for ``rp3beta``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    pairs = history.select(COL_USER_IDX, COL_ITEM_IDX).distinct()
    counts = pairs.groupBy(COL_ITEM_IDX).agg(F.count(F.lit(1)).alias("_n"))
    a = pairs.select(COL_USER_IDX, F.col(COL_ITEM_IDX).alias(_I))
    b = pairs.select(COL_USER_IDX, F.col(COL_ITEM_IDX).alias(_J))
    joined = a.join(b, COL_USER_IDX).where(F.col(_I) != F.col(_J))
    sums = [F.count(F.lit(1)).alias(_CO)]
    if similarity == "rp3beta":
        user_weight = pairs.groupBy(COL_USER_IDX).agg(
            F.pow(F.count(F.lit(1)).cast("double"), F.lit(-float(alpha))).alias(_WU)
        )
        joined = joined.join(user_weight, COL_USER_IDX)
        sums.append(F.sum(_WU).alias(_WALK))
    co = (
        joined.groupBy(_I, _J)
        .agg(*sums)
        .where(F.col(_CO) >= min_co_users)
        .join(counts.select(F.col(COL_ITEM_IDX).alias(_I), F.col("_n").alias(_NI)), _I)
        .join(counts.select(F.col(COL_ITEM_IDX).alias(_J), F.col("_n").alias(_NJ)), _J)
    )
    if similarity == "rp3beta":
        score = (
            F.col(_WALK)
            * F.pow(F.col(_NI).cast("double"), F.lit(-float(alpha)))
            * F.pow(F.col(_NJ).cast("double"), F.lit(-float(beta)))
        )
    else:
        score = F.col(_CO) / (F.sqrt(F.col(_NI) * F.col(_NJ)) + F.lit(float(shrink)))
    sims = co.select(
        F.col(_I).alias(COL_ITEM_IDX), F.col(_J).alias(COL_NEIGHBOUR_IDX), score.alias(COL_SCORE)
    )
    w = Window.partitionBy(COL_ITEM_IDX).orderBy(F.col(COL_SCORE).desc(), F.col(COL_NEIGHBOUR_IDX))
    return sims.withColumn(COL_RANK, F.row_number().over(w).cast("int")).where(F.col(COL_RANK) <= k)


def neighbours_from_conf(history: DataFrame, k: int, kc: Mapping[str, Any]) -> DataFrame:
    """:func:`item_neighbours` with the similarity settings of an ``itemknn`` section ``kc``."""
    return item_neighbours(
        history,
        k,
        float(kc["shrink"]),
        int(kc["min_co_users"]),
        str(kc["similarity"]),
        float(kc["alpha"]),
        float(kc["beta"]),
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
    neighbours = neighbours_from_conf(history, int(kc["neighbours"]), kc).cache()
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
        neighbours = neighbours_from_conf(history, n, kc)
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
