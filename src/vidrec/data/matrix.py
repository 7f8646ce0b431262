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
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import Config
from vidrec.data import schemas, tables

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
    numbered = number_new_ids(cands, id_col, idx_col, offset)
    return numbered if lowered is None else numbered.unionByName(lowered)


def number_new_ids(cands: DataFrame, id_col: str, idx_col: str, offset: int) -> DataFrame:
    """``(id_col, idx_col, first_seen)``: the new ids of ``cands`` numbered from ``offset`` on the driver.

    The order is :func:`extend_index`'s: catalog/profile ids first (by id), then ids known only from
    events (by first event date, then id). A night's new ids are few, and even a first load of a
    large site is a list a driver sorts in a second, so no global window (which Spark would run in
    one task, with a warning) is needed.
    """
    rows = cands.select(id_col, _IN_CATALOG, _FIRST_EVENT, C.COL_FIRST_SEEN).collect()
    rows.sort(
        key=lambda r: (
            0 if r[_IN_CATALOG] else 1,
            dt.date.min if r[_IN_CATALOG] or r[_FIRST_EVENT] is None else r[_FIRST_EVENT],
            r[id_col],
        )
    )
    numbered = [(r[id_col], offset + i, r[C.COL_FIRST_SEEN]) for i, r in enumerate(rows)]
    schema = f"{id_col} string, {idx_col} int, {C.COL_FIRST_SEEN} date"
    return cands.sparkSession.createDataFrame(numbered, schema)


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


#: Columns of a fold: what a (user, item) pair's events add up to before the derived columns.
FOLD_COLS = (
    *C.COUNT_COLS.values(),
    C.COL_TOTAL_WATCH,
    C.COL_MAX_WATCH,
    C.COL_RATING,
    C.COL_RATING_TS,
    C.COL_FIRST_TS,
    C.COL_LAST_TS,
)


def fold_events(events: DataFrame) -> DataFrame:
    """Per (user_id, item_id): event counts, watch seconds (total, longest), the latest rating with its
    time, and the first and last event time. The raw aggregates :func:`merge_folds` can add up."""
    etype = F.col(C.COL_EVENT_TYPE)
    counts = [
        F.sum(F.when(etype == t, 1).otherwise(0)).cast("long").alias(col) for t, col in C.COUNT_COLS.items()
    ]
    is_watch = etype.isin(*C.WATCH_EVENT_TYPES)
    latest_rating = F.max(F.when(etype == "rate", F.struct(F.col(C.COL_TS), F.col(C.COL_RATING))))
    return events.groupBy(C.COL_USER, C.COL_ITEM).agg(
        *counts,
        F.coalesce(F.sum(F.when(is_watch, F.col(C.COL_WATCH_SECONDS))), F.lit(0.0)).alias(C.COL_TOTAL_WATCH),
        F.max(F.when(is_watch, F.col(C.COL_WATCH_SECONDS))).alias(C.COL_MAX_WATCH),
        latest_rating.getField(C.COL_RATING).alias(C.COL_RATING),  # latest rating wins (ties: the higher)
        latest_rating.getField(C.COL_TS).alias(C.COL_RATING_TS),
        F.min(C.COL_TS).alias(C.COL_FIRST_TS),
        F.max(C.COL_TS).alias(C.COL_LAST_TS),
    )


def merge_folds(old: DataFrame, new: DataFrame) -> DataFrame:
    """The fold of old events and new events from their two folds (same keys and :data:`FOLD_COLS`).

    Counts and total watch time add up, the longest watch and the last event time take the maximum,
    the first event time the minimum, and the latest rating wins (by its time, as :func:`fold_events`);
    so merging the fold of day D+1 into the fold up to D equals the fold of every event up to D+1.
    """
    keys = [C.COL_USER, C.COL_ITEM]
    o = old.select(*keys, *[F.col(c).alias(f"_o_{c}") for c in FOLD_COLS])
    n = new.select(*keys, *[F.col(c).alias(f"_n_{c}") for c in FOLD_COLS])
    both = o.join(n, keys, "full")

    def col(side: str, c: str) -> Column:
        return F.col(f"_{side}_{c}")

    add = [
        (F.coalesce(col("o", c), F.lit(0)) + F.coalesce(col("n", c), F.lit(0))).cast("long").alias(c)
        for c in C.COUNT_COLS.values()
    ]
    total = F.coalesce(col("o", C.COL_TOTAL_WATCH), F.lit(0.0)) + F.coalesce(
        col("n", C.COL_TOTAL_WATCH), F.lit(0.0)
    )

    def rated(side: str) -> Column:  # (time, rating): the later wins, ties the higher (as fold_events)
        pair = F.struct(col(side, C.COL_RATING_TS).alias("t"), col(side, C.COL_RATING).alias("r"))
        return F.when(col(side, C.COL_RATING_TS).isNotNull(), pair)

    rating = F.greatest(rated("o"), rated("n"))
    return both.select(
        *keys,
        *add,
        total.alias(C.COL_TOTAL_WATCH),
        F.greatest(col("o", C.COL_MAX_WATCH), col("n", C.COL_MAX_WATCH)).alias(C.COL_MAX_WATCH),
        rating.getField("r").alias(C.COL_RATING),
        rating.getField("t").alias(C.COL_RATING_TS),
        F.least(col("o", C.COL_FIRST_TS), col("n", C.COL_FIRST_TS)).alias(C.COL_FIRST_TS),
        F.greatest(col("o", C.COL_LAST_TS), col("n", C.COL_LAST_TS)).alias(C.COL_LAST_TS),
    )


def finish_interactions(
    folded: DataFrame,
    items: DataFrame,
    user_index: DataFrame,
    item_index: DataFrame,
    weights: Mapping[str, float],
) -> DataFrame:
    """``silver/interactions`` rows from a fold: ids, the watch ratio and the implicit confidence."""
    duration = items.select(C.COL_ITEM, C.COL_DURATION)
    ratio = F.least(F.col(C.COL_MAX_WATCH) / F.col(C.COL_DURATION), F.lit(1.0))
    out = (
        folded.join(duration, C.COL_ITEM, "left")
        .withColumn(C.COL_WATCH_RATIO, F.when(F.col(C.COL_DURATION) > 0, ratio))
        .join(user_index.select(C.COL_USER, C.COL_USER_IDX), C.COL_USER)
        .join(item_index.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM)
    )
    out = out.withColumn(C.COL_CONFIDENCE, confidence_expr(weights))
    return out.select(*schemas.INTERACTIONS.fieldNames())


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
    return finish_interactions(fold_events(events), items, user_index, item_index, weights)


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


class WarehouseInputs(NamedTuple):
    """What a fit reads from a warehouse up to a run date (see :func:`warehouse_inputs`)."""

    events: DataFrame
    items: DataFrame
    users: DataFrame
    user_index: DataFrame
    item_index: DataFrame


def warehouse_inputs(
    spark: SparkSession, warehouse: str, run_date: dt.date, ids_as_of: bool
) -> WarehouseInputs:
    """The events up to ``run_date``, the catalog, the profiles (the user index's ids where there is
    no ``silver/users``) and the indexes; ``ids_as_of`` keeps only the ids first seen by ``run_date``
    (the nightly's view of an earlier date)."""
    user_index = tables.read(spark, warehouse, C.T_USER_INDEX)
    item_index = tables.read(spark, warehouse, C.T_ITEM_INDEX)
    if ids_as_of:
        as_of = F.col(C.COL_FIRST_SEEN) <= F.lit(run_date)
        user_index, item_index = user_index.where(as_of), item_index.where(as_of)
    users = (
        tables.read(spark, warehouse, C.T_USERS)
        if tables.exists(spark, warehouse, C.T_USERS)
        else user_index.select(C.COL_USER)
    )
    return WarehouseInputs(
        events_up_to(spark, warehouse, run_date),
        tables.read(spark, warehouse, C.T_ITEMS),
        users,
        user_index,
        item_index,
    )


def update_indexes(
    spark: SparkSession, conf: Config, run_date: dt.date, events: DataFrame | None = None
) -> dict[str, int]:
    """Number new user and item ids (events, profiles, catalog) and lower ``first_seen`` where due.

    ``events`` are the events whose ids may be new: every event in bronze (the default, a full
    refold) or only the ones a night added (incremental). The catalog and profiles are read whole
    (they are small beside the events). One MERGE per index: inserts new ids, updates only
    ``first_seen`` of known ones (see :func:`extend_index`). Returns the number of new ids per index.
    """
    wh = conf.warehouse
    if events is None:
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
        if existing is None or rows.limit(1).count():
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


#: Key of the watermark in the ``userMetadata`` of ``silver/interactions``' commits.
STATE_KEY = "vidrec_matrix"
MODE_FULL, MODE_INCREMENTAL = "full", "incremental"


@dataclass(frozen=True)
class FoldState:
    """What the latest commit of ``silver/interactions`` folded: every event ingested up to
    ``folded_through`` (``events_total`` of them), for ``run_date``."""

    run_date: dt.date
    folded_through: dt.datetime
    events_total: int

    def to_json(self) -> str:
        """The commit metadata text."""
        return json.dumps(
            {
                STATE_KEY: {
                    "run_date": self.run_date.isoformat(),
                    "folded_through": self.folded_through.isoformat(sep=" "),
                    "events_total": self.events_total,
                }
            }
        )

    @staticmethod
    def from_commit(info: Mapping[str, Any]) -> FoldState | None:
        """The state recorded by a matrix build's commit; ``None`` for any other commit (a roll-back,
        an erasure, a compaction: what they did to the rows is not known here, so the next build refolds)."""
        try:
            data = json.loads(info.get("userMetadata") or "{}")[STATE_KEY]
            return FoldState(
                dt.date.fromisoformat(data["run_date"]),
                dt.datetime.fromisoformat(data["folded_through"]),
                int(data["events_total"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def refold_reason(
    spark: SparkSession, warehouse: str, run_date: dt.date
) -> tuple[str | None, FoldState | None]:
    """Why this run must fold every event again (``None``: the night's events can be merged in), and the
    state of the latest build.

    A full refold is needed the first time; when the latest commit of ``silver/interactions`` was not a
    matrix build (a roll-back restored it, an erasure deleted rows: nothing says what it holds); when
    ``run_date`` is earlier than that build's (a rerun of an earlier date: its own view must be built
    again); when bronze no longer holds the events the build counted (events deleted or rewritten);
    and when the stored interactions lack the columns a merge needs (written before they existed).
    """
    if not tables.exists(spark, warehouse, C.T_INTERACTIONS):
        return "no earlier matrix build", None
    state = FoldState.from_commit(tables.latest_commit_info(spark, warehouse, C.T_INTERACTIONS))
    if state is None:
        return "the latest change of silver/interactions was not a matrix build", None
    if run_date < state.run_date:
        return f"{run_date} is before the latest build ({state.run_date})", state
    have = set(tables.read(spark, warehouse, C.T_INTERACTIONS).columns)
    missing = [c for c in schemas.INTERACTIONS.fieldNames() if c not in have]
    if missing:
        return f"silver/interactions lacks {missing}", state
    folded = tables.read(spark, warehouse, C.T_EVENTS).where(
        F.col(C.COL_INGESTED_AT) <= F.lit(state.folded_through)
    )
    n = folded.count()
    if n != state.events_total:
        return (
            f"bronze holds {n} events ingested up to the last fold, which counted {state.events_total}: "
            "events were deleted or rewritten since",
            state,
        )
    return None, state


def run(spark: SparkSession, conf: Config, run_date: dt.date, full_refresh: bool = False) -> dict[str, Any]:
    """The matrix stage for ``run_date``: extend the indexes, bring ``silver/interactions`` up to date.

    Incremental by default: only the events ingested since the last build (``ingested_at`` after the
    watermark that build committed with the interactions, as the commit's ``userMetadata``) are folded
    (:func:`fold_events`) and merged into the stored pairs (:func:`merge_folds`, one MERGE), and only
    their ids and the catalog's can be new. A full refold of every event in bronze runs with
    ``full_refresh`` and whenever :func:`refold_reason` says so; both give the same rows
    (``tests/test_matrix.py`` proves it over several nights, late events and a rerun). The watermark is
    committed atomically with the rows, so a run killed anywhere is safe to rerun. ``silver/interactions``
    always holds the latest state: bronze never holds an event after the latest run date ingested, so a
    run for an earlier date does not move it back in time (its own view is :func:`interactions_as_of`).
    """
    start = time.perf_counter()
    wh = conf.warehouse
    bronze = tables.read(spark, wh, C.T_EVENTS)
    watermark = bronze.agg(F.max(C.COL_INGESTED_AT), F.count(F.lit(1))).first()
    assert watermark is not None, "an aggregate without grouping returns one row"
    folded_through, events_total = watermark[0], int(watermark[1])
    reason, state = ("--full-refresh", None) if full_refresh else refold_reason(spark, wh, run_date)
    items, weights = tables.read(spark, wh, C.T_ITEMS), conf.matrix.weights
    new_state = FoldState(run_date, folded_through, events_total) if folded_through is not None else None
    if reason is not None:
        mode = MODE_FULL
        log.info("matrix: full refold of every event in bronze (%s)", reason)
        added = update_indexes(spark, conf, run_date, bronze)
        interactions = build_interactions(
            bronze,
            items,
            tables.read(spark, wh, C.T_USER_INDEX),
            tables.read(spark, wh, C.T_ITEM_INDEX),
            weights,
        )
        with tables.commit_metadata(spark, new_state.to_json() if new_state else "{}"):
            tables.overwrite(interactions, wh, C.T_INTERACTIONS)
        folded = events_total
    else:
        assert state is not None
        mode = MODE_INCREMENTAL
        new = bronze.where(F.col(C.COL_INGESTED_AT) > F.lit(state.folded_through)).cache()
        folded = new.count()
        log.info(
            "matrix: incremental: %d event(s) ingested since %s to fold in", folded, state.folded_through
        )
        added = update_indexes(spark, conf, run_date, new)
        if folded and new_state is not None:
            with tables.commit_metadata(spark, new_state.to_json()):
                merge_new_events(spark, conf, new, items)
        else:
            log.info("matrix: no new events: the interactions are already up to date")
        new.unpersist()
    latest = latest_event_date(spark, wh)
    as_of = max(run_date, latest) if latest is not None else run_date
    seconds = time.perf_counter() - start
    log.info(
        "matrix: %s build as of %s: %d events folded (%d in bronze); new ids: %d users, %d items; %.1f s",
        mode,
        as_of,
        folded,
        events_total,
        added["user_index"],
        added["item_index"],
        seconds,
    )
    return {
        "mode": mode,
        "refold_reason": reason,
        "events_folded": folded,
        "interactions_as_of": as_of.isoformat(),
        "new_users": added["user_index"],
        "new_items": added["item_index"],
    }


def merge_new_events(spark: SparkSession, conf: Config, new: DataFrame, items: DataFrame) -> None:
    """Fold ``new`` events and MERGE the result into ``silver/interactions`` (one commit).

    The pairs the new events touch are read back, merged with their new fold
    (:func:`merge_folds`), given their watch ratio and confidence again, and written over the
    stored rows; new pairs are inserted. Pairs the night did not touch are not rewritten.
    """
    wh = conf.warehouse
    delta = fold_events(new).cache()
    keys = [C.COL_USER, C.COL_ITEM]
    stored = tables.read(spark, wh, C.T_INTERACTIONS)
    touched = stored.join(delta.select(*keys), keys, "left_semi").select(*keys, *FOLD_COLS)
    rows = finish_interactions(
        merge_folds(touched, delta),
        items,
        tables.read(spark, wh, C.T_USER_INDEX),
        tables.read(spark, wh, C.T_ITEM_INDEX),
        conf.matrix.weights,
    )
    tables.merge_upsert(rows, wh, C.T_INTERACTIONS, [C.COL_USER_IDX, C.COL_ITEM_IDX])
    delta.unpersist()
