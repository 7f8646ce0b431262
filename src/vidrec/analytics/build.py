"""The analytics stage: read the inputs, build every table, replace each table's run date."""

from __future__ import annotations

import datetime as dt
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec.analytics.cohorts import cohort_retention
from vidrec.analytics.common import (
    ANALYTICS_TABLES,
    DEFAULT_DAYS,
    T_COHORT_RETENTION,
    T_DAILY_ENGAGEMENT,
    T_GENRE_EXPOSURE,
    T_GENRE_TRENDS,
    T_ITEM_PERFORMANCE,
    T_RECOMMENDATION_COVERAGE,
    _lit_date,
    as_date,
    log,
)
from vidrec.analytics.engagement import daily_engagement, genre_trends, item_performance
from vidrec.analytics.exposure import genre_exposure, recommendation_coverage
from vidrec.constants import (
    COL_EVENT_DATE,
    COL_RUN_DATE,
    T_EVENTS,
    T_ITEMS,
    T_RECOMMENDATIONS,
    T_USERS,
)
from vidrec.data import tables


# --- all tables -----------------------------------------------------------------------------------
def build_all(
    events: DataFrame,
    items: DataFrame,
    users: DataFrame,
    recommendations: DataFrame | None,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
) -> dict[str, DataFrame]:
    """Every analytics table for ``run_date``: table name -> DataFrame (nothing is computed yet).

    Parameters
    ----------
    events, items, users : DataFrame
        ``bronze/events``, ``silver/items``, ``silver/users``.
    recommendations : DataFrame or None
        ``gold/recommendations``; None (no recommendations yet) leaves out
        ``recommendation_coverage`` and ``genre_exposure``.
    run_date : date or str
        The run date.
    days : int
        Window of event dates of ``daily_engagement``, ``genre_trends`` and of the consumption
        baselines of ``recommendation_coverage`` and ``genre_exposure`` (default 28).

    Returns
    -------
    dict of str to DataFrame
        Keys are the names in ``ANALYTICS_TABLES``, in that order.
    """
    run_day = as_date(run_date)
    frames = {
        T_DAILY_ENGAGEMENT[1]: daily_engagement(events, users, run_day, days=days),
        T_ITEM_PERFORMANCE[1]: item_performance(events, items, run_day),
        T_GENRE_TRENDS[1]: genre_trends(events, items, run_day, days=days),
        T_COHORT_RETENTION[1]: cohort_retention(events, users, run_day),
    }
    if recommendations is not None:
        frames[T_RECOMMENDATION_COVERAGE[1]] = recommendation_coverage(
            recommendations, events, items, run_day, days=days
        )
        frames[T_GENRE_EXPOSURE[1]] = genre_exposure(recommendations, events, items, run_day, days=days)
    return frames


def _rows_written(spark: SparkSession, warehouse: str, table: tables.Table, run_day: dt.date) -> int:
    """Rows of the last commit of ``table`` (Delta's operation metrics; counts the partition without)."""
    from delta.tables import DeltaTable

    path = tables.table_path(warehouse, table)
    last = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    metrics = (last["operationMetrics"] if last is not None else None) or {}
    if "numOutputRows" in metrics:
        return int(metrics["numOutputRows"])
    return tables.read(spark, warehouse, table).where(F.col(COL_RUN_DATE) == _lit_date(run_day)).count()


def write_all(
    spark: SparkSession,
    warehouse: str,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
) -> dict[str, int]:
    """Read the input tables, build every analytics table and replace its ``run_date`` partition.

    Parameters
    ----------
    spark : SparkSession
    warehouse : str
        Warehouse root.
    run_date : date or str
        The run date (events after it are ignored).
    days : int
        See ``build_all``.

    Returns
    -------
    dict of str to int
        Table name -> rows written for ``run_date``.

    Raises
    ------
    FileNotFoundError
        When ``bronze/events``, ``silver/items`` or ``silver/users`` does not exist.
    """
    run_day = as_date(run_date)
    events = tables.read(spark, warehouse, T_EVENTS).where(F.col(COL_EVENT_DATE) <= _lit_date(run_day))
    items = tables.read(spark, warehouse, T_ITEMS)
    users = tables.read(spark, warehouse, T_USERS)
    recommendations = None
    if tables.exists(spark, warehouse, T_RECOMMENDATIONS):
        recommendations = tables.read(spark, warehouse, T_RECOMMENDATIONS).where(
            F.col(COL_RUN_DATE) == _lit_date(run_day)
        )
    else:
        log.warning(
            "analytics %s: no %s yet, skipping recommendation coverage tables",
            run_day,
            tables.catalog_name(T_RECOMMENDATIONS),
        )
    written: dict[str, int] = {}
    for name, df in build_all(events, items, users, recommendations, run_day, days=days).items():
        table = ANALYTICS_TABLES[name]
        started = time.perf_counter()
        # merge_schema: a warehouse written before engagement columns were added takes them on
        tables.replace_partition(df, warehouse, table, run_day, merge_schema=True)
        written[name] = _rows_written(spark, warehouse, table, run_day)
        log.info(
            "analytics %s: %s %d rows in %.1fs",
            run_day,
            tables.catalog_name(table),
            written[name],
            time.perf_counter() - started,
        )
    return written
