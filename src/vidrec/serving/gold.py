"""The served tables: generator lists as ``gold/recommendations`` rows, similar items, user embeddings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.data import contracts, schemas, tables
from vidrec.models.base import Candidates, FitContext

REASONS = {
    C.ALGO_ALS: "people with similar taste watched this",
    C.ALGO_POPULARITY: "popular right now",
    C.ALGO_EASE: "often watched together with what you watched",
    C.ALGO_NCF: "people with similar taste watched this",
    C.ALGO_MULTVAE: "matches the mix of what you watch",
    C.ALGO_SEQUENCE: "what people watch next after your recent titles",
    C.ALGO_GRU: "what people watch next after your recent titles",
    C.ALGO_TEXT: "similar in story, cast or genre to what you watched",
    C.ALGO_FUSION: "similar taste and similar content to what you watched",
    C.ALGO_ITEMKNN: "often watched together with what you watched",
    C.ALGO_CONTENT: "similar in genre, cast or story to what you watched",
}

COLD_START_REASON = "popular right now (not enough history for a personal list)"


def seen_ids(ctx: FitContext) -> DataFrame:
    """``(user_id, item_id)`` of ``ctx.seen``: the pairs no gold list may hold."""
    users = ctx.users.where(F.col(C.COL_USER_IDX).isNotNull()).select(C.COL_USER, C.COL_USER_IDX)
    items = ctx.items.select(C.COL_ITEM, C.COL_ITEM_IDX)
    return ctx.seen.join(users, C.COL_USER_IDX).join(items, C.COL_ITEM_IDX).select(C.COL_USER, C.COL_ITEM)


def served_list(recs: DataFrame, algorithm: str, model_version: str, reason: str | Column) -> DataFrame:
    """One generator's list in index space with the gold columns that need no id.

    ``(user_idx, item_idx, rank, score, algorithm, model_version, reason)``: every model's lists are
    unioned in this shape and mapped to ids once (:func:`to_gold`), not one id join per model.
    """
    why = reason if isinstance(reason, Column) else F.lit(reason)
    return recs.select(
        C.COL_USER_IDX,
        C.COL_ITEM_IDX,
        F.col(C.COL_RANK).cast("int").alias(C.COL_RANK),
        F.col(C.COL_SCORE).cast("double").alias(C.COL_SCORE),
        F.lit(algorithm).alias(C.COL_ALGORITHM),
        F.lit(model_version).alias(C.COL_MODEL_VERSION),
        why.cast("string").alias(C.COL_REASON),
    )


def hybrid_list(cand: Candidates, n: int) -> DataFrame:
    """The hybrid's :func:`served_list`: each row with its own explanation (``reasons`` artifact)."""
    recs = cand.recs.where(F.col(C.COL_RANK) <= n)
    reasons = cand.artifacts.get("reasons")
    if reasons is None:
        return served_list(recs, C.ALGO_HYBRID, cand.model_version, F.lit(None))
    why = reasons.select(C.COL_USER_IDX, C.COL_ITEM_IDX, F.col(C.COL_REASON).alias("_why"))
    joined = recs.join(why, [C.COL_USER_IDX, C.COL_ITEM_IDX], "left")
    return served_list(joined, C.ALGO_HYBRID, cand.model_version, F.col("_why"))


def cold_start_lists(fallback: DataFrame, served: Mapping[str, tuple[DataFrame, str]]) -> DataFrame | None:
    """The popularity list, as :func:`served_list` rows, of every (algorithm, user) pair that the
    algorithm has no list for but ``fallback`` has: marked :data:`COLD_START_REASON`.

    ``served`` maps an algorithm to its ``(lists, model_version)``. Two joins whatever the number of
    algorithms: the pairs that are missing, then their popularity lists.
    """
    if not served:
        return None
    spark = fallback.sparkSession
    covered = [
        recs.select(C.COL_USER_IDX).distinct().withColumn(C.COL_ALGORITHM, F.lit(algo))
        for algo, (recs, _) in served.items()
    ]
    have = covered[0]
    for frame in covered[1:]:
        have = have.unionByName(frame)
    versions = spark.createDataFrame(
        [(algo, version) for algo, (_, version) in served.items()],
        f"{C.COL_ALGORITHM} string, {C.COL_MODEL_VERSION} string",
    )
    fallback = fallback.select(C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_RANK, C.COL_SCORE)
    missing = (
        fallback.select(C.COL_USER_IDX)
        .distinct()
        .crossJoin(F.broadcast(versions))
        .join(have, [C.COL_USER_IDX, C.COL_ALGORITHM], "left_anti")
    )
    rows = fallback.join(missing, C.COL_USER_IDX)
    return rows.select(
        C.COL_USER_IDX,
        C.COL_ITEM_IDX,
        F.col(C.COL_RANK).cast("int").alias(C.COL_RANK),
        F.col(C.COL_SCORE).cast("double").alias(C.COL_SCORE),
        C.COL_ALGORITHM,
        C.COL_MODEL_VERSION,
        F.lit(COLD_START_REASON).alias(C.COL_REASON),
    )


def to_gold(lists: DataFrame, ctx: FitContext, run_date: dt.date) -> DataFrame:
    """:func:`served_list` rows (any number of algorithms, unioned) to ``gold/recommendations`` rows:
    one join with the user index and one with the catalog for all of them."""
    users = tables.read(ctx.spark, ctx.conf.warehouse, C.T_USER_INDEX).select(C.COL_USER, C.COL_USER_IDX)
    items = ctx.items.select(C.COL_ITEM, C.COL_ITEM_IDX)
    return (
        lists.join(users, C.COL_USER_IDX)
        .join(items, C.COL_ITEM_IDX)
        .select(F.lit(run_date).alias(C.COL_RUN_DATE), *[c for c in schemas.RECOMMENDATIONS.fieldNames()[1:]])
    )


def write_similar_items(
    ctx: FitContext, fitted: Mapping[str, Candidates], run_date: dt.date
) -> dict[str, int]:
    """``gold/similar_items`` for this run date (one commit): co-watch and content neighbours.

    Reuses the ``neighbours`` of item-kNN and the ``item_vectors`` of the content generator when they
    were fitted tonight; returns rows per algorithm.
    """
    from vidrec.models.itemknn import similar_items

    knn, content = fitted.get(C.ALGO_ITEMKNN), fitted.get(C.ALGO_CONTENT)
    rows = similar_items(
        ctx,
        int(ctx.conf.similar_items.top_n),
        run_date,
        neighbours=knn.artifacts.get("neighbours") if knn is not None else None,
        vectors=content.artifacts.get("item_vectors") if content is not None else None,
    )
    rows = rows.cache()
    contracts.check_similar_items(rows, ctx.conf.similar_items.top_n)
    tables.replace_partition(rows, ctx.conf.warehouse, C.T_SIMILAR_ITEMS, run_date)
    counts = rows.groupBy(C.COL_ALGORITHM).count().collect()
    rows.unpersist()
    return {r[C.COL_ALGORITHM]: r["count"] for r in counts}


def write_user_embeddings(
    ctx: FitContext, embeddings: list[tuple[str, str, DataFrame]], run_date: dt.date
) -> None:
    """``gold/user_embeddings``: ``run_date, user_id, algorithm, model_version, embedding`` (one commit)."""
    users = tables.read(ctx.spark, ctx.conf.warehouse, C.T_USER_INDEX).select(C.COL_USER, C.COL_USER_IDX)
    frames = [
        art.join(users, C.COL_USER_IDX).select(
            F.lit(run_date).alias(C.COL_RUN_DATE),
            C.COL_USER,
            F.lit(algo).alias(C.COL_ALGORITHM),
            F.lit(version).alias(C.COL_MODEL_VERSION),
            F.col("embedding").cast("array<float>").alias("embedding"),
        )
        for algo, version, art in embeddings
    ]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    algos = ", ".join(f"'{a}'" for a, _, _ in embeddings)
    tables.replace_partition(
        out,
        ctx.conf.warehouse,
        C.T_USER_EMBEDDINGS,
        run_date,
        extra_predicate=f"{C.COL_ALGORITHM} IN ({algos})",
    )
