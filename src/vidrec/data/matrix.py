"""The user-item matrix: ``silver/interactions`` and the stable integer indexes.

``build_interactions`` folds events into one row per (user, item) with counts per event type, the
watch ratio, the latest explicit rating and an implicit ``confidence`` (see :func:`confidence_expr`).
``extend_index`` appends ids never seen before after the current maximum, so a known id keeps its
number across nights and models trained on different nights agree on ids; the numbering does not
depend on the order in which run dates are processed. ``silver/interactions`` is the latest state;
``interactions_as_of`` gives a run for an earlier date its own view.
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
from vidrec.config import Config
from vidrec.data import tables

log = logging.getLogger(__name__)


_FIRST_EVENT = "_first_event"
_IN_CATALOG = "_in_catalog"
_OLD_FIRST_SEEN = "_old_first_seen"
_IN_VIEW = "_in_view"


def extend_index(
    existing: DataFrame | None,
    events: DataFrame,
    catalog: DataFrame | None,
    id_col: str,
    idx_col: str,
    run_date: dt.date,
) -> DataFrame:
    """Rows to MERGE into an index: new ids numbered after its maximum, and ``first_seen`` corrections.

    The numbering does not depend on the order in which run dates are processed: new ids are
    numbered in the order (ids of the catalog or profiles first, by id; then ids known only from
    events, by the date of their first event, then id), which is the order a day-by-day run in date
    order hands out numbers in. ``first_seen`` is the earliest run date whose view held the id (the
    catalog, or an event up to that date): a run for an earlier date than the one that numbered an
    id lowers it (the number never changes). Ids whose first event is after ``run_date`` (bronze
    already holds later days) are numbered too, with ``first_seen`` = that event's date.

    Parameters
    ----------
    existing : DataFrame or None
        The index so far: ``(id_col, idx_col, first_seen)``.
    events : DataFrame
        ``(id_col, event_date)`` of every event in bronze.
    catalog : DataFrame or None
        ``id_col`` of the catalog (items) or profiles (users).
    id_col, idx_col : str
        The id and the integer index column.
    run_date : date
        The run's date.

    Returns
    -------
    DataFrame
        ``(id_col, idx_col, first_seen)``: new ids, and known ids whose ``first_seen`` goes down.
    """
    cands = (
        events.where(F.col(id_col).isNotNull())
        .groupBy(id_col)
        .agg(F.min(C.COL_EVENT_DATE).alias(_FIRST_EVENT))
    )
    if catalog is not None:
        known = catalog.select(id_col).where(F.col(id_col).isNotNull()).distinct()
        cands = cands.join(known.withColumn(_IN_CATALOG, F.lit(True)), id_col, "full")
    else:
        cands = cands.withColumn(_IN_CATALOG, F.lit(None).cast("boolean"))
    in_catalog = F.coalesce(F.col(_IN_CATALOG), F.lit(False))
    day = F.lit(run_date)
    in_view = in_catalog | (F.col(_FIRST_EVENT) <= day)
    cands = cands.select(
        id_col,
        in_catalog.alias(_IN_CATALOG),
        F.col(_FIRST_EVENT),
        in_view.alias(_IN_VIEW),
        F.when(in_view, day).otherwise(F.col(_FIRST_EVENT)).alias(C.COL_FIRST_SEEN),
    )
    offset = 0
    lowered = None
    if existing is not None:
        old = existing.select(id_col, idx_col, F.col(C.COL_FIRST_SEEN).alias(_OLD_FIRST_SEEN))
        joined = cands.join(old, id_col, "left")
        # only this run's own view lowers first_seen: an id first seen after run_date keeps its date
        lowered = joined.where(
            F.col(idx_col).isNotNull() & F.col(_IN_VIEW) & (F.col(C.COL_FIRST_SEEN) < F.col(_OLD_FIRST_SEEN))
        ).select(id_col, idx_col, C.COL_FIRST_SEEN)
        cands = joined.where(F.col(idx_col).isNull()).drop(idx_col, _OLD_FIRST_SEEN)
        row = existing.agg(F.max(idx_col)).first()
        offset = (row[0] + 1) if row and row[0] is not None else 0
    order = Window.orderBy(
        F.when(F.col(_IN_CATALOG), 0).otherwise(1),
        F.when(F.col(_IN_CATALOG), F.lit(None).cast("date")).otherwise(F.col(_FIRST_EVENT)).asc_nulls_first(),
        F.col(id_col),
    )
    numbered = cands.select(
        id_col,
        (F.row_number().over(order) - 1 + offset).cast("int").alias(idx_col),
        C.COL_FIRST_SEEN,
    )
    return numbered if lowered is None else numbered.unionByName(lowered)


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
    """Fold events into ``silver/interactions`` rows (schema in :data:`vidrec.data.schemas.INTERACTIONS`).

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


def seen_pairs(interactions: DataFrame, exclude_played: bool) -> DataFrame:
    """``(user_idx, item_idx)`` never to recommend: completed or rated (and played, if configured).

    Positive feedback (like, favorite) and dislikes are excluded too: the user has already judged it.
    """
    ic = C.COUNT_COLS
    cond = (
        (F.col(ic["complete"]) > 0)
        | F.col(C.COL_RATING).isNotNull()
        | (F.col(ic["like"]) > 0)
        | (F.col(ic["favorite"]) > 0)
        | (F.col(ic["dislike"]) > 0)
    )
    if exclude_played:
        cond = cond | (F.col(ic["play"]) > 0)
    return interactions.where(cond).select(C.COL_USER_IDX, C.COL_ITEM_IDX)


def events_up_to(spark: SparkSession, warehouse: str, run_date: dt.date) -> DataFrame:
    """Bronze events with ``event_date <= run_date`` (what a run for ``run_date`` may know)."""
    return tables.read(spark, warehouse, C.T_EVENTS).where(F.col(C.COL_EVENT_DATE) <= F.lit(run_date))


def update_indexes(spark: SparkSession, conf: Config, run_date: dt.date) -> dict[str, int]:
    """Number new user and item ids (events, profiles, catalog) and lower ``first_seen`` where due.

    One MERGE per index: inserts new ids, updates only ``first_seen`` of known ones (see
    :func:`extend_index`). Returns the number of new ids per index.
    """
    wh = conf.warehouse
    events = tables.read(spark, wh, C.T_EVENTS)
    added: dict[str, int] = {}
    specs = [
        (C.T_USER_INDEX, C.COL_USER, C.COL_USER_IDX, C.T_USERS),
        (C.T_ITEM_INDEX, C.COL_ITEM, C.COL_ITEM_IDX, C.T_ITEMS),
    ]
    for table, id_col, idx_col, profile_table in specs:
        catalog = (
            tables.read(spark, wh, profile_table).select(id_col)
            if tables.exists(spark, wh, profile_table)
            else None
        )
        existing = tables.read(spark, wh, table) if tables.exists(spark, wh, table) else None
        rows = extend_index(
            existing, events.select(id_col, C.COL_EVENT_DATE), catalog, id_col, idx_col, run_date
        ).cache()
        if existing is None:
            added[table[1]] = rows.count()
        else:
            known = existing.select(id_col)
            added[table[1]] = rows.join(known, id_col, "left_anti").count()
        tables.merge_upsert(
            rows, wh, table, [id_col], update_if=f"s.{C.COL_FIRST_SEEN} < t.{C.COL_FIRST_SEEN}"
        )
        rows.unpersist()
    return added


def latest_event_date(spark: SparkSession, warehouse: str) -> dt.date | None:
    """The latest ``event_date`` in bronze (``None`` when bronze is empty)."""
    row = tables.read(spark, warehouse, C.T_EVENTS).agg(F.max(C.COL_EVENT_DATE)).first()
    assert row is not None, "an aggregate without grouping returns one row"
    return row[0]


def interactions_as_of(spark: SparkSession, conf: Config, run_date: dt.date) -> DataFrame:
    """``silver/interactions`` as a run for ``run_date`` must see them.

    ``silver/interactions`` holds the latest state (every event in bronze). When bronze holds
    events after ``run_date`` (a run for an earlier date, out of order or in a backfill), the
    interactions up to ``run_date`` are folded again from bronze, same function, not stored.
    """
    wh = conf.warehouse
    later = tables.read(spark, wh, C.T_EVENTS).where(F.col(C.COL_EVENT_DATE) > F.lit(run_date)).limit(1)
    if not later.collect():
        return tables.read(spark, wh, C.T_INTERACTIONS)
    log.info("matrix: %s is before the latest state: interactions folded again up to it", run_date)
    return build_interactions(
        events_up_to(spark, wh, run_date),
        tables.read(spark, wh, C.T_ITEMS),
        tables.read(spark, wh, C.T_USER_INDEX),
        tables.read(spark, wh, C.T_ITEM_INDEX),
        conf.matrix.weights,
    )


def run(spark: SparkSession, conf: Config, run_date: dt.date) -> dict[str, Any]:
    """Build the matrix stage for ``run_date``: extend the indexes, rewrite ``silver/interactions``.

    ``silver/interactions`` always folds every event in bronze, i.e. the latest state: bronze never
    holds an event after the latest run date ingested, so a run for an earlier date (out of order,
    backfill) does not move it back in time; it only adds the events that run ingested.
    """
    start = time.perf_counter()
    wh = conf.warehouse
    added = update_indexes(spark, conf, run_date)
    interactions = build_interactions(
        tables.read(spark, wh, C.T_EVENTS),
        tables.read(spark, wh, C.T_ITEMS),
        tables.read(spark, wh, C.T_USER_INDEX),
        tables.read(spark, wh, C.T_ITEM_INDEX),
        conf.matrix.weights,
    )
    tables.overwrite(interactions, wh, C.T_INTERACTIONS)
    n = tables.read(spark, wh, C.T_INTERACTIONS).count()
    latest = latest_event_date(spark, wh)
    as_of = max(run_date, latest) if latest is not None else run_date
    log.info(
        "matrix: %d interactions (as of %s); new ids: %d users, %d items; %.1f s",
        n,
        as_of,
        added["user_index"],
        added["item_index"],
        time.perf_counter() - start,
    )
    return {
        "interactions": n,
        "interactions_as_of": as_of.isoformat(),
        "new_users": added["user_index"],
        "new_items": added["item_index"],
    }
