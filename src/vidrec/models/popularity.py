"""Popularity: the baseline every model must beat, the cold-start fallback, and ``gold/popular_items``.

An item's popularity is the number of distinct users who engaged with it (a play, complete, like,
favorite, share or rating) in the last ``popularity.window_days`` before the end of the data.
Trending is the growth of the last ``trending_days`` over the ``trending_days`` before.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config.sections import PopularityConf
from vidrec.data.frames import number_in_one_task
from vidrec.models.base import Candidates, FitContext, model_version
from vidrec.models.topn import COL_FEATURES, top_n_from_factors

ENGAGED_TYPES = C.ENGAGED_EVENT_TYPES
MIN_TRENDING_VIEWERS = 3


def engaged(events: DataFrame) -> DataFrame:
    """Events that show a user chose an item (not impressions, dislikes or progress pings)."""
    return events.where(F.col(C.COL_EVENT_TYPE).isin(*ENGAGED_TYPES))


def item_popularity(events: DataFrame, end: dt.datetime | F.Column | None, window_days: int) -> DataFrame:
    """``(item_id, score)``: distinct engaged users in the window ending at ``end`` (default: last event).

    Ties on the window count are broken by the all-time count (a tiny fraction), so the order is
    total and deterministic.
    """
    ev = engaged(events)
    if (
        end is None
    ):  # one scalar aggregate joined to every row (a global window would gather all rows in one task)
        ev = ev.crossJoin(F.broadcast(ev.agg(F.max(C.COL_TS).alias("_end"))))
    else:
        ev = ev.withColumn("_end", F.lit(end))
    in_window = F.col(C.COL_TS) > F.col("_end") - F.make_interval(days=F.lit(window_days))
    return ev.groupBy(C.COL_ITEM).agg(
        (
            F.countDistinct(F.when(in_window, F.col(C.COL_USER))) + F.countDistinct(C.COL_USER) / F.lit(1e6)
        ).alias(C.COL_SCORE)
    )


def _ranked(df: DataFrame, partition: list[str], n: int) -> DataFrame:
    """The ``n`` best rows by score (ties: item id) of each ``partition`` group, ranked from 1.

    With no partition (one list), each task keeps its ``n`` best rows and the ``n`` are ranked as one
    sorted array: a window there (even on a constant key, which Spark's optimizer drops) would move
    every row to one task and log "No Partition Defined for Window operation".
    """
    if not partition:
        top = df.orderBy(F.col(C.COL_SCORE).desc(), F.col(C.COL_ITEM)).limit(n)
        ranked = number_in_one_task(top, [-F.col(C.COL_SCORE), F.col(C.COL_ITEM)], C.COL_RANK)
        return ranked.withColumn(C.COL_RANK, F.col(C.COL_RANK).cast("int"))
    w = Window.partitionBy(*partition).orderBy(F.col(C.COL_SCORE).desc(), F.col(C.COL_ITEM))
    return df.withColumn(C.COL_RANK, F.row_number().over(w).cast("int")).where(F.col(C.COL_RANK) <= n)


def popular_lists(events: DataFrame, items: DataFrame, pc: PopularityConf, run_date: dt.date) -> DataFrame:
    """``gold/popular_items`` rows: overall, per genre (``genre:<name>``) and trending lists.

    Returns ``run_date, segment, rank, item_id, score``.
    """
    n = pc.top_n
    end = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
    pop = item_popularity(events, end, pc.window_days).cache()
    overall = _ranked(pop.withColumn(C.COL_SEGMENT, F.lit(C.SEGMENT_OVERALL)), [], n)
    genres = items.select(C.COL_ITEM, F.explode(C.COL_GENRES).alias("_genre"))
    by_genre = _ranked(
        pop.join(genres, C.COL_ITEM).withColumn(
            C.COL_SEGMENT, F.concat(F.lit(C.GENRE_SEGMENT_PREFIX), "_genre")
        ),
        [C.COL_SEGMENT],
        n,
    )
    days = pc.trending_days
    ev = engaged(events)
    recent = F.col(C.COL_TS) >= F.lit(end - dt.timedelta(days=days))
    before = (F.col(C.COL_TS) >= F.lit(end - dt.timedelta(days=2 * days))) & ~recent
    trend = (
        ev.where(F.col(C.COL_TS) < F.lit(end))
        .groupBy(C.COL_ITEM)
        .agg(
            F.countDistinct(F.when(recent, F.col(C.COL_USER))).alias("_recent"),
            F.countDistinct(F.when(before, F.col(C.COL_USER))).alias("_before"),
        )
        .where(F.col("_recent") >= MIN_TRENDING_VIEWERS)
        .withColumn(C.COL_SCORE, (F.col("_recent") + 1.0) / (F.col("_before") + 1.0))
        .withColumn(C.COL_SEGMENT, F.lit(C.SEGMENT_TRENDING))
    )
    trending = _ranked(trend, [], n)
    cols = [C.COL_SEGMENT, C.COL_RANK, C.COL_ITEM, C.COL_SCORE]
    out = overall.select(*cols).unionByName(by_genre.select(*cols)).unionByName(trending.select(*cols))
    return out.select(F.lit(run_date).alias(C.COL_RUN_DATE), *cols)


def generate_popularity(ctx: FitContext) -> Candidates:
    """Most popular unseen items for every target user (also those with no history)."""
    pc = ctx.conf.popularity
    pop = item_popularity(ctx.events, None, pc.window_days).join(
        ctx.items.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM
    )
    item_factors = pop.select(C.COL_ITEM_IDX, F.array(F.col(C.COL_SCORE).cast("float")).alias(COL_FEATURES))
    user_factors = (
        ctx.target_users.select(C.COL_USER_IDX)
        .distinct()
        .withColumn(COL_FEATURES, F.array(F.lit(1.0).cast("float")))
    )
    recs = top_n_from_factors(
        ctx.spark,
        user_factors,
        item_factors,
        ctx.seen,
        ctx.n,
        block_size=ctx.conf.recommend.user_block_size,
    )
    return Candidates(recs, model_version(C.ALGO_POPULARITY, ctx.run_date, pc))
