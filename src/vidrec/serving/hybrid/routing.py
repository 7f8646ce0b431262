"""Routing by history (new, cold, warm users) and each user's segment popular list."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from vidrec.constants import (
    COL_AGE_BAND,
    COL_CONFIDENCE,
    COL_COUNTRY,
    COL_EVENT_TYPE,
    COL_ITEM_IDX,
    COL_SCORE,
    COL_TS,
    COL_USER_IDX,
)
from vidrec.models.itemknn import rank_per_user
from vidrec.models.popularity import ENGAGED_TYPES
from vidrec.serving.hybrid.common import COL_N_POSITIVE, COL_TIER, FILL_WEIGHT, TIER_COLD, TIER_NEW, TIER_WARM

#: Segment levels, most specific first; ``overall`` always applies.
SEGMENT_LEVELS: tuple[str, ...] = (COL_COUNTRY, COL_AGE_BAND)

OVERALL = "overall"

#: Popularity window (days back from the latest training event) when ``popularity`` conf is absent.
DEFAULT_WINDOW_DAYS = 28

_LEVEL, _VALUE, _SHARE = "_level", "_value", "_share"


# --- routing and segment popularity -------------------------------------------------------------


def user_tiers(interactions: DataFrame, targets: DataFrame, cold_start_max_events: int) -> DataFrame:
    """``(user_idx, n_positive, tier)`` for every target user.

    ``n_positive`` counts the user's interactions with ``confidence > 0`` (impressions and dislikes
    alone count 0); ``tier`` is ``new`` (0), ``cold`` (1..``cold_start_max_events``) or ``warm``.
    """
    counts = (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .groupBy(COL_USER_IDX)
        .agg(F.countDistinct(COL_ITEM_IDX).alias(COL_N_POSITIVE))
    )
    n = F.coalesce(F.col(COL_N_POSITIVE), F.lit(0)).cast("int")
    tier = (
        F.when(n == 0, TIER_NEW).when(n <= F.lit(int(cold_start_max_events)), TIER_COLD).otherwise(TIER_WARM)
    )
    return (
        targets.select(COL_USER_IDX)
        .distinct()
        .join(counts, COL_USER_IDX, "left")
        .select(COL_USER_IDX, n.alias(COL_N_POSITIVE), tier.alias(COL_TIER))
    )


def segment_popularity(
    events: DataFrame,
    users: DataFrame,
    targets: DataFrame,
    seen: DataFrame,
    n: int,
    min_segment_users: int = 20,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> DataFrame:
    """Each target user's segment popular list: candidates ``(user_idx, item_idx, score, rank)``.

    Popularity of item ``i`` in segment ``s`` = share of the segment's engaged users (a play,
    complete, like, favorite, share or rating in the last ``window_days`` of ``events``) who engaged
    with ``i``. A user's segment is their country if it has at least ``min_segment_users`` engaged
    users, else their age band under the same rule, else ``overall``;
    ``score = share in segment + FILL_WEIGHT * overall share``, so the list is completed by the
    overall ranking. Seen pairs are excluded.

    Parameters
    ----------
    events : DataFrame
        ``(user_idx, item_idx, event_type, ts)``.
    users : DataFrame
        ``user_idx`` with ``country`` and ``age_band`` when known (either column may be absent).
    targets, seen : DataFrame
        ``user_idx`` to serve; ``(user_idx, item_idx)`` to exclude.
    n, min_segment_users, window_days : int
    """
    levels = [c for c in SEGMENT_LEVELS if c in users.columns]
    profile = (
        users.select(COL_USER_IDX, *levels)
        .where(F.col(COL_USER_IDX).isNotNull())
        .dropDuplicates([COL_USER_IDX])
    )
    ev = events.where(F.col(COL_EVENT_TYPE).isin(*ENGAGED_TYPES)).select(COL_USER_IDX, COL_ITEM_IDX, COL_TS)
    end = ev.agg(F.max(COL_TS).alias("_end"))
    ev = (
        ev.crossJoin(F.broadcast(end))
        .where(F.col(COL_TS) > F.col("_end") - F.make_interval(days=F.lit(int(window_days))))
        .select(COL_USER_IDX, COL_ITEM_IDX)
        .distinct()
        .join(profile, COL_USER_IDX, "left")
    )
    long = ev.select(COL_USER_IDX, COL_ITEM_IDX, F.lit(OVERALL).alias(_LEVEL), F.lit("*").alias(_VALUE))
    for level in levels:
        long = long.unionByName(
            ev.where(F.col(level).isNotNull()).select(
                COL_USER_IDX,
                COL_ITEM_IDX,
                F.lit(level).alias(_LEVEL),
                F.col(level).cast("string").alias(_VALUE),
            )
        )
    sizes = long.groupBy(_LEVEL, _VALUE).agg(F.countDistinct(COL_USER_IDX).alias("_size"))
    pool = 2 * n + 10
    by_share = Window.partitionBy(_LEVEL, _VALUE).orderBy(F.col(_SHARE).desc(), F.col(COL_ITEM_IDX))
    shares = (
        long.groupBy(_LEVEL, _VALUE, COL_ITEM_IDX)
        .agg(F.count(F.lit(1)).alias("_cnt"))
        .join(sizes, [_LEVEL, _VALUE])
        .withColumn(_SHARE, F.col("_cnt") / F.col("_size"))
        .withColumn("_pos", F.row_number().over(by_share))
        .where(F.col("_pos") <= pool)
        .select(_LEVEL, _VALUE, COL_ITEM_IDX, _SHARE, "_size")
    )
    chosen = targets.select(COL_USER_IDX).distinct().join(profile, COL_USER_IDX, "left")
    level_col: Column = F.lit(OVERALL)
    value_col: Column = F.lit("*")
    for level in reversed(levels):
        size = F.col(f"_size_{level}")
        seg_sizes = sizes.where(F.col(_LEVEL) == level).select(
            F.col(_VALUE).alias(f"_v_{level}"), F.col("_size").alias(f"_size_{level}")
        )
        chosen = chosen.join(seg_sizes, F.col(level).cast("string") == F.col(f"_v_{level}"), "left")
        ok = F.coalesce(size, F.lit(0)) >= F.lit(int(min_segment_users))
        level_col = F.when(ok, F.lit(level)).otherwise(level_col)
        value_col = F.when(ok, F.col(level).cast("string")).otherwise(value_col)
    chosen = chosen.select(COL_USER_IDX, level_col.alias(_LEVEL), value_col.alias(_VALUE))
    in_segment = chosen.join(shares.drop("_size"), [_LEVEL, _VALUE]).select(
        COL_USER_IDX, COL_ITEM_IDX, _SHARE
    )
    overall = shares.where(F.col(_LEVEL) == OVERALL).select(
        COL_ITEM_IDX, (F.col(_SHARE) * F.lit(FILL_WEIGHT)).alias(_SHARE)
    )
    fill = chosen.select(COL_USER_IDX).crossJoin(overall)
    scores = (
        in_segment.unionByName(fill)
        .groupBy(COL_USER_IDX, COL_ITEM_IDX)
        .agg(F.sum(_SHARE).alias(COL_SCORE))
        .join(seen.select(COL_USER_IDX, COL_ITEM_IDX), [COL_USER_IDX, COL_ITEM_IDX], "left_anti")
    )
    return rank_per_user(scores, n)
