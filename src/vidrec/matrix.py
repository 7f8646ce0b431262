"""The user-item matrix: ``silver/interactions`` and the stable integer indexes.

``build_interactions`` folds events into one row per (user, item) with counts per event type, the
watch ratio, the latest explicit rating and an implicit ``confidence`` (see :func:`confidence_expr`).
``extend_index`` appends ids never seen before after the current maximum, so a known id keeps its
number across nights and models trained on different nights agree on ids.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec import tables

log = logging.getLogger(__name__)


def extend_index(
    existing: DataFrame | None,
    ids: DataFrame,
    id_col: str,
    idx_col: str,
    run_date: dt.date,
) -> DataFrame:
    """Rows to append to an index: ids of ``ids`` not in ``existing``, numbered after its maximum.

    New ids are numbered in sorted order, so the result is deterministic. Returns
    ``(id_col, idx_col, first_seen)``; empty when every id is known.
    """
    candidates = ids.select(id_col).where(F.col(id_col).isNotNull()).distinct()
    offset = 0
    if existing is not None:
        candidates = candidates.join(existing.select(id_col), id_col, "left_anti")
        row = existing.agg(F.max(idx_col)).first()
        offset = (row[0] + 1) if row and row[0] is not None else 0
    numbered = candidates.withColumn(
        idx_col, (F.row_number().over(Window.orderBy(id_col)) - 1 + offset).cast("int")
    )
    return numbered.withColumn(C.COL_FIRST_SEEN, F.lit(run_date))


def confidence_expr(weights: Mapping[str, float]) -> F.Column:
    """Implicit preference strength of a (user, item) row, ``>= 0``.

    ``confidence = max(0, w_watch_ratio * watch_ratio + w_play * ln(1 + n_play)
    + w_complete * [n_complete > 0] + w_like * [n_like > 0] + w_favorite * [n_favorite > 0]
    + w_share * [n_share > 0] + w_comment * [n_comment > 0] + w_rated * [rated]
    + w_rating * max(0, rating - 3) - w_dislike * [n_dislike > 0])``.
    Impressions alone give 0: shown is not watched. ALS turns it into ``1 + alpha * confidence``.
    """
    any_ = lambda t: F.when(F.col(C.COUNT_COLS[t]) > 0, 1.0).otherwise(0.0)  # noqa: E731
    rated = F.when(F.col(C.COL_RATING).isNotNull(), 1.0).otherwise(0.0)
    total = (
        F.lit(weights["watch_ratio"]) * F.coalesce(F.col(C.COL_WATCH_RATIO), F.lit(0.0))
        + F.lit(weights["play"]) * F.log1p(F.col(C.COUNT_COLS["play"]).cast("double"))
        + F.lit(weights["complete"]) * any_("complete")
        + F.lit(weights["like"]) * any_("like")
        + F.lit(weights["favorite"]) * any_("favorite")
        + F.lit(weights["share"]) * any_("share")
        + F.lit(weights["comment"]) * any_("comment")
        + F.lit(weights["rated"]) * rated
        + F.lit(weights["rating"]) * F.greatest(F.coalesce(F.col(C.COL_RATING), F.lit(3.0)) - 3.0, F.lit(0.0))
        - F.lit(weights["dislike"]) * any_("dislike")
    )
    return F.greatest(total, F.lit(0.0))


def build_interactions(
    events: DataFrame,
    items: DataFrame,
    user_index: DataFrame,
    item_index: DataFrame,
    weights: Mapping[str, float],
) -> DataFrame:
    """Fold events into ``silver/interactions`` rows (schema in :data:`vidrec.schemas.INTERACTIONS`).

    Parameters
    ----------
    events : DataFrame
        Bronze events (``user_id, item_id, event_type, ts, watch_seconds, rating``).
    items : DataFrame
        Catalog with ``item_id, duration_seconds`` (for the watch ratio).
    user_index, item_index : DataFrame
        ``(user_id, user_idx)`` and ``(item_id, item_idx)`` covering every id in ``events``.
    weights : mapping
        ``matrix.weights`` of the configuration.
    """
    etype = F.col(C.COL_EVENT_TYPE)
    counts = [
        F.sum(F.when(etype == t, 1).otherwise(0)).cast("long").alias(col) for t, col in C.COUNT_COLS.items()
    ]
    is_watch = etype.isin(*C.WATCH_EVENT_TYPES)
    rate_struct = F.when(etype == "rate", F.struct(F.col(C.COL_TS), F.col(C.COL_RATING)))
    agg = events.groupBy(C.COL_USER, C.COL_ITEM).agg(
        *counts,
        F.coalesce(F.sum(F.when(is_watch, F.col(C.COL_WATCH_SECONDS))), F.lit(0.0)).alias(C.COL_TOTAL_WATCH),
        F.max(F.when(is_watch, F.col(C.COL_WATCH_SECONDS))).alias("_max_watch"),
        F.max(rate_struct).getField(C.COL_RATING).alias(C.COL_RATING),  # latest rating wins
        F.min(C.COL_TS).alias(C.COL_FIRST_TS),
        F.max(C.COL_TS).alias(C.COL_LAST_TS),
    )
    duration = items.select(C.COL_ITEM, C.COL_DURATION)
    ratio = F.least(F.col("_max_watch") / F.col(C.COL_DURATION), F.lit(1.0))
    out = (
        agg.join(duration, C.COL_ITEM, "left")
        .withColumn(C.COL_WATCH_RATIO, F.when(F.col(C.COL_DURATION) > 0, ratio))
        .join(user_index.select(C.COL_USER, C.COL_USER_IDX), C.COL_USER)
        .join(item_index.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM)
    )
    out = out.withColumn(C.COL_CONFIDENCE, confidence_expr(weights))
    return out.select(
        C.COL_USER,
        C.COL_ITEM,
        C.COL_USER_IDX,
        C.COL_ITEM_IDX,
        *C.COUNT_COLS.values(),
        C.COL_TOTAL_WATCH,
        C.COL_WATCH_RATIO,
        C.COL_RATING,
        C.COL_FIRST_TS,
        C.COL_LAST_TS,
        C.COL_CONFIDENCE,
    )


def events_up_to(spark: SparkSession, warehouse: str, run_date: dt.date) -> DataFrame:
    """Bronze events with ``event_date <= run_date`` (what a run for ``run_date`` may know)."""
    return tables.read(spark, warehouse, C.T_EVENTS).where(F.col(C.COL_EVENT_DATE) <= F.lit(run_date))


def update_indexes(spark: SparkSession, conf: Mapping[str, Any], run_date: dt.date) -> dict[str, int]:
    """Append new user and item ids (from events, profiles and catalog) to the silver indexes."""
    wh = conf["warehouse"]
    events = events_up_to(spark, wh, run_date)
    added: dict[str, int] = {}
    specs = [
        (C.T_USER_INDEX, C.COL_USER, C.COL_USER_IDX, C.T_USERS),
        (C.T_ITEM_INDEX, C.COL_ITEM, C.COL_ITEM_IDX, C.T_ITEMS),
    ]
    for table, id_col, idx_col, profile_table in specs:
        ids = events.select(id_col)
        if tables.exists(spark, wh, profile_table):
            ids = ids.unionByName(tables.read(spark, wh, profile_table).select(id_col))
        existing = tables.read(spark, wh, table) if tables.exists(spark, wh, table) else None
        new_rows = extend_index(existing, ids, id_col, idx_col, run_date).cache()
        added[table[1]] = new_rows.count()
        tables.merge_insert_new(new_rows, wh, table, [id_col])
        new_rows.unpersist()
    return added


def run(spark: SparkSession, conf: Mapping[str, Any], run_date: dt.date) -> dict[str, int]:
    """Build the matrix stage for ``run_date``: extend the indexes, rewrite ``silver/interactions``."""
    start = time.perf_counter()
    wh = conf["warehouse"]
    added = update_indexes(spark, conf, run_date)
    interactions = build_interactions(
        events_up_to(spark, wh, run_date),
        tables.read(spark, wh, C.T_ITEMS),
        tables.read(spark, wh, C.T_USER_INDEX),
        tables.read(spark, wh, C.T_ITEM_INDEX),
        conf["matrix"]["weights"],
    )
    tables.overwrite(interactions, wh, C.T_INTERACTIONS)
    n = tables.read(spark, wh, C.T_INTERACTIONS).count()
    log.info(
        "matrix: %d interactions; new ids: %d users, %d items; %.1f s",
        n,
        added["user_index"],
        added["item_index"],
        time.perf_counter() - start,
    )
    return {"interactions": n, "new_users": added["user_index"], "new_items": added["item_index"]}
