"""Names, tables and expressions shared by the analysts' gold tables."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vidrec.constants import (
    COL_ALGORITHM,
    COL_EVENT_DATE,
    COL_EVENT_TYPE,
    COL_GENRES,
    COL_ITEM,
    COL_RUN_DATE,
    COL_USER,
    COL_WATCH_SECONDS,
    ENGAGED_EVENT_TYPES,
    GOLD,
    WATCH_EVENT_TYPES,
)
from vidrec.data import tables

log = logging.getLogger(__name__)

# --- literal values -------------------------------------------------------------------------------
#: Device/country value of the rollup rows of ``daily_engagement``.
ALL = "all"

#: Stand-in for a null device or country, and the genre of items without genres.
UNKNOWN = "unknown"

EVENT_IMPRESSION = "impression"

EVENT_PLAY = "play"

EVENT_COMPLETE = "complete"

EVENT_LIKE = "like"

EVENT_RATE = "rate"

SECONDS_PER_HOUR = 3600.0

#: Days before a day that ``item_performance``'s trend compares it with.
TREND_DAYS = 7

DEFAULT_DAYS = 28

DEFAULT_COHORT_WEEKS = 26

# --- output columns -------------------------------------------------------------------------------
COL_ACTIVE_USERS = "active_users"

COL_IMPRESSIONS = "impressions"

COL_PLAYS = "plays"

COL_COMPLETIONS = "completions"

COL_WATCH_HOURS = "watch_hours"

COL_COMPLETION_RATE = "completion_rate"

COL_UNIQUE_VIEWERS = "unique_viewers"

COL_AVG_WATCH_RATIO = "avg_watch_ratio"

COL_LIKES = "likes"

COL_RATING_MEAN = "rating_mean"

COL_RATING_COUNT = "rating_count"

COL_PLAYS_PREV7_MEAN = "plays_prev7_mean"

COL_ENGAGEMENTS = "engagements"

COL_ENGAGED_USERS = "engaged_users"

COL_ENGAGEMENTS_PREV7_MEAN = "engagements_prev7_mean"

COL_ENGAGEMENT_SHARE = "engagement_share"

COL_TREND = "trend"

COL_GENRE = "genre"

COL_VIEWERS = "viewers"

COL_NEW_VIEWERS = "new_viewers"

COL_RETURNING_VIEWERS = "returning_viewers"

COL_WATCH_SHARE = "watch_share"

COL_GROWTH_DAY = "growth_vs_prev_day"

COL_GROWTH_WEEK = "growth_vs_prev_week"

COL_COHORT_WEEK = "cohort_week"

COL_WEEKS_SINCE = "weeks_since_signup"

COL_COHORT_SIZE = "cohort_size"

COL_RETAINED_SHARE = "retained_share"

COL_USERS = "users"

COL_ITEMS_RECOMMENDED = "items_recommended"

COL_CATALOG_SIZE = "catalog_size"

COL_CATALOG_COVERAGE = "catalog_coverage"

COL_EXPOSURES = "exposures"

COL_GINI = "gini_exposure"

COL_GINI_CONSUMPTION = "gini_consumption"

COL_NEW_TITLES = "new_titles"

COL_NEW_TITLES_SHOWN = "new_titles_in_top10"

COL_USERS_SHOWN_NEW = "users_shown_new_title"

#: ``recommendation_coverage`` counts a new title as shown when it is at this rank or better.
NEW_TITLE_TOP_K = 10

COL_EXPOSURE_SHARE = "exposure_share"

COL_CONSUMPTION_SHARE = "consumption_share"

COL_EXPOSURE_LIFT = "exposure_lift"

#: Columns every transform reads from events / recommendations.
EVENT_COLUMNS = (COL_USER, COL_ITEM, COL_EVENT_TYPE, COL_EVENT_DATE)

RECOMMENDATION_COLUMNS = (COL_RUN_DATE, COL_USER, COL_ITEM, COL_ALGORITHM)

# Internal helper columns (never in an output table).
_DAY = "_day"

_WEIGHT = "_weight"

_WATCH_S = "_watch_s"

_FIRST_DATE = "_first_date"

# --- tables ---------------------------------------------------------------------------------------
T_DAILY_ENGAGEMENT = (GOLD, "daily_engagement")

T_ITEM_PERFORMANCE = (GOLD, "item_performance")

T_GENRE_TRENDS = (GOLD, "genre_trends")

T_COHORT_RETENTION = (GOLD, "cohort_retention")

T_RECOMMENDATION_COVERAGE = (GOLD, "recommendation_coverage")

T_GENRE_EXPOSURE = (GOLD, "genre_exposure")

#: Table name -> (layer, name) of every table ``build_all`` returns.
ANALYTICS_TABLES: dict[str, tables.Table] = {
    t[1]: t
    for t in (
        T_DAILY_ENGAGEMENT,
        T_ITEM_PERFORMANCE,
        T_GENRE_TRENDS,
        T_COHORT_RETENTION,
        T_RECOMMENDATION_COVERAGE,
        T_GENRE_EXPOSURE,
    )
}


# --- argument checks and shared expressions -------------------------------------------------------
def _require(df: DataFrame, columns: Iterable[str], what: str, func: str) -> None:
    """Raise ``ValueError`` naming the first of ``columns`` missing from ``df`` (no Spark job)."""
    if not isinstance(df, DataFrame):
        raise TypeError(f"{func}: {what} must be a DataFrame, got {type(df).__name__}")
    present = set(df.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"{func}: {what} has no column '{missing[0]}' (missing: {', '.join(missing)})")


def as_date(run_date: dt.date | str) -> dt.date:
    """Return ``run_date`` as a ``datetime.date`` (accepts a date, a datetime or an ISO string).

    Raises
    ------
    TypeError
        When ``run_date`` is none of those.
    ValueError
        When a string is not an ISO date.
    """
    if isinstance(run_date, dt.datetime):
        return run_date.date()
    if isinstance(run_date, dt.date):
        return run_date
    if isinstance(run_date, str):
        return dt.date.fromisoformat(run_date)
    raise TypeError(f"run_date must be a date or an ISO 'YYYY-MM-DD' string, got {type(run_date).__name__}")


def _positive(value: int, name: str, func: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{func}: {name} must be an int >= 1, got {value!r}")
    return value


def _lit_date(day: dt.date) -> Column:
    return F.lit(day)


def _day_number(col: str) -> Column:
    """Days since the epoch: an orderable integer for range windows over dates."""
    return F.unix_date(F.col(col))


def _is(event_type: str) -> Column:
    return (F.col(COL_EVENT_TYPE) == event_type).cast("long")


def _is_watch() -> Column:
    return F.col(COL_EVENT_TYPE).isin(*WATCH_EVENT_TYPES)


def _is_engaged() -> Column:
    """An engagement event of any kind (:data:`vidrec.constants.ENGAGED_EVENT_TYPES`)."""
    return F.col(COL_EVENT_TYPE).isin(*ENGAGED_EVENT_TYPES)


def _watch_seconds() -> Column:
    """``watch_seconds`` of watch events (0 elsewhere and where null)."""
    return F.when(_is_watch(), F.coalesce(F.col(COL_WATCH_SECONDS), F.lit(0.0))).otherwise(F.lit(0.0))


def _ratio(num: Column, den: Column) -> Column:
    """``num / den`` as a double; null when ``den`` is null or zero."""
    return F.when(den.isNotNull() & (den != 0), num.cast("double") / den.cast("double")).otherwise(
        F.lit(None).cast("double")
    )


def _events_between(events: DataFrame, start: dt.date | None, end: dt.date) -> DataFrame:
    cond = F.col(COL_EVENT_DATE) <= _lit_date(end)
    if start is not None:
        cond = cond & (F.col(COL_EVENT_DATE) >= _lit_date(start))
    return events.where(cond)


def item_genres(items: DataFrame, col_genres: str = COL_GENRES) -> DataFrame:
    """One row per (item, genre) with the item's weight toward that genre.

    Parameters
    ----------
    items : DataFrame
        The catalog, with ``item_id`` and ``genres`` (array of strings, nullable).
    col_genres : str
        Name of the genres column.

    Returns
    -------
    DataFrame
        ``(item_id, genre, _weight)``: ``_weight = 1 / n`` for an item with ``n`` distinct
        non-blank genres; an item without genres gets the single genre ``'unknown'`` with weight 1.
    """
    _require(items, [COL_ITEM, col_genres], "items", "item_genres")
    cleaned = F.array_distinct(
        F.filter(
            F.coalesce(F.col(col_genres), F.array().cast("array<string>")),
            lambda g: g.isNotNull() & (F.trim(g) != ""),
        )
    )
    genres = F.when(F.size(cleaned) == 0, F.array(F.lit(UNKNOWN))).otherwise(cleaned)
    return items.select(COL_ITEM, genres.alias("_genres")).select(
        COL_ITEM,
        F.explode("_genres").alias(COL_GENRE),
        (F.lit(1.0) / F.size("_genres")).alias(_WEIGHT),
    )


def _with_genres(df: DataFrame, genres: DataFrame) -> DataFrame:
    """Left-join ``item_genres`` rows; items missing from the catalog get ``'unknown'``, weight 1."""
    return (
        df.join(genres, on=COL_ITEM, how="left")
        .withColumn(COL_GENRE, F.coalesce(F.col(COL_GENRE), F.lit(UNKNOWN)))
        .withColumn(_WEIGHT, F.coalesce(F.col(_WEIGHT), F.lit(1.0)))
    )
