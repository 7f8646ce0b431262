"""One reason per served row: "because you watched <title>", "popular in <genre>", "new in <genre>"."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vidrec.config.sections import HybridConf
from vidrec.constants import (
    ALGO_CONTENT,
    ALGO_ITEMKNN,
    ALGO_POPULARITY,
    COL_CONFIDENCE,
    COL_GENRES,
    COL_ITEM,
    COL_ITEM_IDX,
    COL_LAST_TS,
    COL_REASON,
    COL_RELEASE_YEAR,
    COL_SCORE,
    COL_TITLE,
    COL_USER_IDX,
)
from vidrec.models.base import Candidates, FitContext
from vidrec.models.content import COL_NEIGHBOUR_IDX, item_vectors
from vidrec.serving.hybrid.common import _TOP, COL_TIER, NEW_ITEMS, SEGMENT, TIER_NEW

#: Content neighbours per item searched for a "because you watched" anchor.
REASON_NEIGHBOURS = 50

#: Least content cosine between a watched item and a recommended one for "because you watched".
REASON_MIN_SIMILARITY = 0.2


# --- explanations -------------------------------------------------------------------------------


def _item_info(items: DataFrame, run_year: int, new_release_years: int) -> DataFrame:
    cols = set(items.columns)
    title = F.coalesce(
        *([F.col(COL_TITLE)] if COL_TITLE in cols else []),
        *([F.col(COL_ITEM)] if COL_ITEM in cols else []),
        F.col(COL_ITEM_IDX).cast("string"),
    )
    genres = F.col(COL_GENRES) if COL_GENRES in cols else F.lit(None).cast("array<string>")
    first = F.when(F.size(genres) > 0, F.element_at(genres, 1))
    is_new = (
        F.coalesce(F.col(COL_RELEASE_YEAR) >= F.lit(run_year - int(new_release_years)), F.lit(False))
        if COL_RELEASE_YEAR in cols
        else F.lit(False)
    )
    return items.select(
        COL_ITEM_IDX,
        title.alias("_title"),
        F.coalesce(genres, F.array().cast("array<string>")).alias("_genres"),
        first.alias("_genre"),
        is_new.alias("_is_new"),
    ).dropDuplicates([COL_ITEM_IDX])


def user_top_genre(interactions: DataFrame, items: DataFrame) -> DataFrame:
    """``(user_idx, _top_genre)``: the genre of the user's positive items with the largest total
    confidence (ties: alphabetical). Users whose items have no genre are left out."""
    if COL_GENRES not in items.columns:
        return interactions.sparkSession.createDataFrame([], f"{COL_USER_IDX} int, _top_genre string")
    genres = items.select(COL_ITEM_IDX, F.explode(COL_GENRES).alias("_g")).where(F.col("_g").isNotNull())
    sums = (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .join(genres, COL_ITEM_IDX)
        .groupBy(COL_USER_IDX, "_g")
        .agg(F.sum(COL_CONFIDENCE).alias("_s"))
    )
    w = Window.partitionBy(COL_USER_IDX).orderBy(F.col("_s").desc(), F.col("_g"))
    return (
        sums.withColumn("_pos", F.row_number().over(w))
        .where(F.col("_pos") == 1)
        .select(COL_USER_IDX, F.col("_g").alias("_top_genre"))
    )


def anchors(
    recs: DataFrame,
    interactions: DataFrame,
    neighbours: DataFrame | None,
    content_neighbours: DataFrame | None,
    history: int = 20,
) -> DataFrame:
    """``(user_idx, item_idx, _anchor)``: for each recommended pair, the user's watched item most
    similar to it — a co-watch neighbour first (highest similarity), else a content neighbour with a
    cosine of at least :data:`REASON_MIN_SIMILARITY`. Only the user's ``history`` most recent
    positive items are considered; pairs with no such item are left out.

    Parameters
    ----------
    neighbours, content_neighbours : DataFrame, optional
        ``(item_idx, neighbour_idx, score)``: co-watch and content neighbour lists (either
        direction of a pair counts). Joining lists keeps this cheap at any catalog size: no vector
        arithmetic per (recommendation, history item) pair.
    """
    spark = recs.sparkSession
    empty = spark.createDataFrame([], f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, _anchor int")
    if neighbours is None and content_neighbours is None:
        return empty
    recent = Window.partitionBy(COL_USER_IDX).orderBy(
        F.col(COL_LAST_TS).desc_nulls_last(), F.col(COL_CONFIDENCE).desc(), F.col(COL_ITEM_IDX)
    )
    hist = (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .join(recs.select(COL_USER_IDX).distinct(), COL_USER_IDX, "left_semi")
        .withColumn("_pos", F.row_number().over(recent))
        .where(F.col("_pos") <= history)
        .select(COL_USER_IDX, F.col(COL_ITEM_IDX).alias("_h"))
    )
    pairs = (
        recs.select(COL_USER_IDX, COL_ITEM_IDX)
        .join(hist, COL_USER_IDX)
        .where(F.col("_h") != F.col(COL_ITEM_IDX))
    )

    def symmetric(nb: DataFrame | None, name: str) -> DataFrame | None:
        if nb is None:
            return None
        one = nb.select(
            F.col(COL_ITEM_IDX).alias("_h"), F.col(COL_NEIGHBOUR_IDX).alias(COL_ITEM_IDX), COL_SCORE
        )
        both = one.unionByName(
            one.select(F.col(COL_ITEM_IDX).alias("_h"), F.col("_h").alias(COL_ITEM_IDX), COL_SCORE)
        )
        return both.groupBy("_h", COL_ITEM_IDX).agg(F.max(COL_SCORE).alias(name))

    for nb, name in ((neighbours, "_knn"), (content_neighbours, "_cos")):
        table = symmetric(nb, name)
        if table is None:
            pairs = pairs.withColumn(name, F.lit(None).cast("double"))
        else:
            pairs = pairs.join(table, ["_h", COL_ITEM_IDX], "left")
    pairs = pairs.where(F.col("_knn").isNotNull() | (F.col("_cos") >= F.lit(REASON_MIN_SIMILARITY)))
    best = Window.partitionBy(COL_USER_IDX, COL_ITEM_IDX).orderBy(
        F.col("_knn").desc_nulls_last(), F.col("_cos").desc_nulls_last(), F.col("_h")
    )
    return (
        pairs.withColumn("_pos", F.row_number().over(best))
        .where(F.col("_pos") == 1)
        .select(COL_USER_IDX, COL_ITEM_IDX, F.col("_h").alias("_anchor"))
    )


def explain(
    recs: DataFrame,
    tops: DataFrame,
    tiers: DataFrame,
    interactions: DataFrame,
    items: DataFrame,
    run_date: str,
    neighbours: DataFrame | None = None,
    content_neighbours: DataFrame | None = None,
    new_release_years: int = 0,
    history: int = 20,
    new_items: DataFrame | None = None,
) -> DataFrame:
    """``(user_idx, item_idx, reason)``: one non-null reason per row of ``recs``.

    In order of precedence:

    - ``new`` tier: ``"popular in <genre>"`` (the item's first genre);
    - the item is new (released in the last ``new_release_years`` years of ``run_date``'s year, or
      one of ``new_items``) and has the user's top genre: ``"new in <genre> you like"``;
    - popularity contributed most to the blended score: ``"popular in <genre>"``;
    - a watched item is similar to it (:func:`anchors`): ``"because you watched <title>"``;
    - otherwise ``"popular in <genre>"``; ``"popular right now"`` for an item without genres.

    Parameters
    ----------
    recs : DataFrame
        Final candidates ``(user_idx, item_idx, ...)``.
    tops : DataFrame
        ``(user_idx, item_idx, _top)``: the main contributor of each pair (may lack pairs).
    tiers : DataFrame
        From :func:`user_tiers`.
    interactions, items : DataFrame
        Training interactions; the catalog with ``item_idx``.
    run_date : str
        ISO date (its year dates "new" releases).
    neighbours, content_neighbours : DataFrame, optional
        Co-watch and content neighbours ``(item_idx, neighbour_idx, score)`` for the "because you
        watched" anchor.
    new_items : DataFrame, optional
        ``item_idx`` of items too new to have an audience (see :func:`new_item_ids`).
    """
    info = _item_info(items, dt.date.fromisoformat(run_date).year, new_release_years)
    if new_items is not None:
        fresh = new_items.select(COL_ITEM_IDX).distinct().withColumn("_fresh", F.lit(True))
        info = info.join(fresh, COL_ITEM_IDX, "left").select(
            COL_ITEM_IDX,
            "_title",
            "_genres",
            "_genre",
            (F.col("_is_new") | F.coalesce(F.col("_fresh"), F.lit(False))).alias("_is_new"),
        )
    pairs = recs.select(COL_USER_IDX, COL_ITEM_IDX)
    anchor = anchors(pairs, interactions, neighbours, content_neighbours, history)
    titles = info.select(F.col(COL_ITEM_IDX).alias("_anchor"), F.col("_title").alias("_anchor_title"))
    joined = (
        pairs.join(info, COL_ITEM_IDX, "left")
        .join(tiers.select(COL_USER_IDX, COL_TIER), COL_USER_IDX, "left")
        .join(tops.select(COL_USER_IDX, COL_ITEM_IDX, _TOP), [COL_USER_IDX, COL_ITEM_IDX], "left")
        .join(user_top_genre(interactions, items), COL_USER_IDX, "left")
        .join(anchor, [COL_USER_IDX, COL_ITEM_IDX], "left")
        .join(titles, "_anchor", "left")
    )
    popular = F.when(F.col("_genre").isNotNull(), F.concat(F.lit("popular in "), F.col("_genre"))).otherwise(
        F.lit("popular right now")
    )
    likes_genre = F.coalesce(F.array_contains(F.col("_genres"), F.col("_top_genre")), F.lit(False))
    reason = (
        F.when(F.col(COL_TIER) == TIER_NEW, popular)
        .when(
            F.coalesce(F.col("_is_new"), F.lit(False)) & likes_genre,
            F.concat(F.lit("new in "), F.col("_top_genre"), F.lit(" you like")),
        )
        .when(
            (F.col(_TOP) == NEW_ITEMS) & F.col("_genre").isNotNull(),
            F.concat(F.lit("new in "), F.col("_genre")),
        )
        .when(F.col(_TOP).isin(ALGO_POPULARITY, SEGMENT), popular)
        .when(
            F.col("_anchor_title").isNotNull(),
            F.concat(F.lit("because you watched "), F.col("_anchor_title")),
        )
        .otherwise(popular)
    )
    return joined.select(COL_USER_IDX, COL_ITEM_IDX, reason.alias(COL_REASON))


def _reasons(
    ctx: FitContext,
    candidates: Mapping[str, Candidates],
    hc: HybridConf,
    recs: DataFrame,
    scored: DataFrame,
    tiers: DataFrame,
    fresh: DataFrame | None,
) -> DataFrame:
    """:func:`explain` with the co-watch neighbours of item-kNN and content neighbours of the vectors."""
    from vidrec.models.content import content_neighbours

    content = candidates.get(ALGO_CONTENT)
    knn = candidates.get(ALGO_ITEMKNN)
    vectors = content.artifacts.get("item_vectors") if content is not None else None
    if vectors is None:
        vectors = item_vectors(ctx.items, ctx.conf.content)
    block = ctx.conf.recommend.user_block_size
    similar = content_neighbours(ctx.spark, vectors, REASON_NEIGHBOURS, block_size=block)
    neighbours = knn.artifacts.get("neighbours") if knn is not None else None
    return explain(
        recs,
        scored.select(COL_USER_IDX, COL_ITEM_IDX, _TOP),
        tiers,
        ctx.interactions,
        ctx.items,
        ctx.run_date,
        neighbours,
        similar,
        int(hc.new_release_years),
        int(hc.reason_history),
        fresh,
    )
