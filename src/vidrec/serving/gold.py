"""The served tables: generator lists as ``gold/recommendations`` rows, similar items, user embeddings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import DataFrame
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


def to_gold(cand: Candidates, algorithm: str, ctx: FitContext, run_date: dt.date, reason: str) -> DataFrame:
    """Map a generator's candidates to ``gold/recommendations`` rows (ids, version, reason)."""
    users = tables.read(ctx.spark, ctx.conf.warehouse, C.T_USER_INDEX).select(C.COL_USER, C.COL_USER_IDX)
    items = ctx.items.select(C.COL_ITEM, C.COL_ITEM_IDX)
    return (
        cand.recs.join(users, C.COL_USER_IDX)
        .join(items, C.COL_ITEM_IDX)
        .select(
            F.lit(run_date).alias(C.COL_RUN_DATE),
            C.COL_USER,
            F.col(C.COL_RANK).cast("int").alias(C.COL_RANK),
            C.COL_ITEM,
            F.col(C.COL_SCORE).cast("double").alias(C.COL_SCORE),
            F.lit(algorithm).alias(C.COL_ALGORITHM),
            F.lit(cand.model_version).alias(C.COL_MODEL_VERSION),
            F.lit(reason).alias(C.COL_REASON),
        )
    )


def hybrid_to_gold(cand: Candidates, ctx: FitContext, run_date: dt.date) -> DataFrame:
    """``gold/recommendations`` rows of the hybrid: each row with its own explanation."""
    rows = to_gold(cand, C.ALGO_HYBRID, ctx, run_date, "").drop(C.COL_REASON)
    reasons = cand.artifacts["reasons"]
    users = tables.read(ctx.spark, ctx.conf.warehouse, C.T_USER_INDEX).select(C.COL_USER, C.COL_USER_IDX)
    items = ctx.items.select(C.COL_ITEM, C.COL_ITEM_IDX)
    named = (
        reasons.join(users, C.COL_USER_IDX)
        .join(items, C.COL_ITEM_IDX)
        .select(C.COL_USER, C.COL_ITEM, C.COL_REASON)
    )
    return rows.join(named, [C.COL_USER, C.COL_ITEM], "left").select(*schemas.RECOMMENDATIONS.fieldNames())


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
