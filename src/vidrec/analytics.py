"""The analysts' gold tables: pure ``DataFrame -> DataFrame`` transforms, and the job that writes them.

Each transform takes the input tables as DataFrames and the run date, and returns the rows of one
gold table for that run date (a ``run_date`` date column on every row); none triggers a Spark job.
Only events with ``event_date <= run_date`` count. ``write_all`` is the I/O edge: it reads the input
tables, builds every table with ``build_all`` and replaces each table's ``run_date`` partition.

Conventions shared by the tables (``docs/analytics_tables.md`` documents them column by column):

- an *active* user did anything but an ``impression`` (being shown an item is not engagement);
- a *play* is a ``play`` event, a *completion* a ``complete`` event, *watch time* the sum of
  ``watch_seconds`` of ``play``/``progress``/``complete`` events (each reports the seconds watched);
- a *viewer* of an item or genre has a ``play``/``progress``/``complete`` event on it;
- an item with several genres counts ``1/n`` of its watch time, plays and exposures toward each of
  its ``n`` genres (shares then sum to 1); an item without genres, or missing from the catalog,
  belongs to the genre ``'unknown'``; a null device or country is ``'unknown'``;
- ratios are null where their denominator is zero or missing, never a division error.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from vidrec import tables
from vidrec.constants import (
    COL_ALGORITHM,
    COL_COUNTRY,
    COL_DEVICE,
    COL_DURATION,
    COL_EVENT_DATE,
    COL_EVENT_TYPE,
    COL_GENRES,
    COL_ITEM,
    COL_RATING,
    COL_RUN_DATE,
    COL_SIGNUP_DATE,
    COL_USER,
    COL_WATCH_SECONDS,
    GOLD,
    T_EVENTS,
    T_ITEMS,
    T_RECOMMENDATIONS,
    T_USERS,
    WATCH_EVENT_TYPES,
)

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


# --- daily engagement -----------------------------------------------------------------------------
def daily_engagement(
    events: DataFrame,
    users: DataFrame,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
) -> DataFrame:
    """Daily engagement per event date x device x country, with ``'all'`` rollups.

    Parameters
    ----------
    events : DataFrame
        ``bronze/events`` rows (``user_id``, ``event_type``, ``event_date``, ``device``,
        ``watch_seconds``).
    users : DataFrame
        ``silver/users`` rows (``user_id``, ``country``); users absent from it count as country
        ``'unknown'``.
    run_date : date or str
        The run date; the table covers the ``days`` event dates ending on it.
    days : int
        Width of the window of event dates, default 28 (late events update the days they fall on).

    Returns
    -------
    DataFrame
        ``run_date, event_date, device, country, active_users, plays, completions, watch_hours,
        completion_rate``: one row per (event date, device, country) seen, plus rollup rows with
        ``device = 'all'`` and/or ``country = 'all'``. The ``('all', 'all')`` row exists for every
        day of the window from the first event date on, with zeros on a day without events.

    Raises
    ------
    ValueError
        When a required column is missing or ``days < 1``.

    Examples
    --------
    >>> daily_engagement(events, users, "2026-03-31", days=7).where("device = 'all'")  # doctest: +SKIP
    """
    func = "daily_engagement"
    _require(events, [*EVENT_COLUMNS, COL_DEVICE, COL_WATCH_SECONDS], "events", func)
    _require(users, [COL_USER, COL_COUNTRY], "users", func)
    _positive(days, "days", func)
    run_day = as_date(run_date)
    start = run_day - dt.timedelta(days=days - 1)

    countries = users.select(COL_USER, COL_COUNTRY)
    rows = (
        _events_between(events, start, run_day)
        .join(countries, on=COL_USER, how="left")
        .select(
            COL_EVENT_DATE,
            F.coalesce(F.col(COL_DEVICE), F.lit(UNKNOWN)).alias(COL_DEVICE),
            F.coalesce(F.col(COL_COUNTRY), F.lit(UNKNOWN)).alias(COL_COUNTRY),
            F.when(F.col(COL_EVENT_TYPE) != EVENT_IMPRESSION, F.col(COL_USER)).alias("_active_user"),
            _is(EVENT_PLAY).alias("_play"),
            _is(EVENT_COMPLETE).alias("_complete"),
            _watch_seconds().alias(_WATCH_S),
        )
    )
    keys = [COL_EVENT_DATE, COL_DEVICE, COL_COUNTRY]
    grouped = rows.groupingSets(
        [keys, [COL_EVENT_DATE, COL_DEVICE], [COL_EVENT_DATE, COL_COUNTRY], [COL_EVENT_DATE]], *keys
    ).agg(
        F.countDistinct("_active_user").alias(COL_ACTIVE_USERS),
        F.sum("_play").alias(COL_PLAYS),
        F.sum("_complete").alias(COL_COMPLETIONS),
        (F.sum(_WATCH_S) / SECONDS_PER_HOUR).alias(COL_WATCH_HOURS),
        F.grouping(COL_DEVICE).alias("_g_device"),
        F.grouping(COL_COUNTRY).alias("_g_country"),
    )
    metrics = grouped.select(
        COL_EVENT_DATE,
        F.when(F.col("_g_device") == 1, F.lit(ALL)).otherwise(F.col(COL_DEVICE)).alias(COL_DEVICE),
        F.when(F.col("_g_country") == 1, F.lit(ALL)).otherwise(F.col(COL_COUNTRY)).alias(COL_COUNTRY),
        F.col(COL_ACTIVE_USERS).cast("long").alias(COL_ACTIVE_USERS),
        F.col(COL_PLAYS).cast("long").alias(COL_PLAYS),
        F.col(COL_COMPLETIONS).cast("long").alias(COL_COMPLETIONS),
        F.col(COL_WATCH_HOURS).cast("double").alias(COL_WATCH_HOURS),
    )

    # Zero rows for quiet days: every day of the window from the first event on gets an all/all row.
    first_day = _events_between(events, None, run_day).agg(F.min(COL_EVENT_DATE).alias(_FIRST_DATE))
    spine = first_day.where(F.col(_FIRST_DATE).isNotNull()).select(
        F.explode(F.sequence(F.greatest(F.col(_FIRST_DATE), _lit_date(start)), _lit_date(run_day))).alias(
            COL_EVENT_DATE
        )
    )
    quiet = spine.join(
        metrics.where((F.col(COL_DEVICE) == ALL) & (F.col(COL_COUNTRY) == ALL)),
        on=COL_EVENT_DATE,
        how="left_anti",
    ).select(
        COL_EVENT_DATE,
        F.lit(ALL).alias(COL_DEVICE),
        F.lit(ALL).alias(COL_COUNTRY),
        F.lit(0).cast("long").alias(COL_ACTIVE_USERS),
        F.lit(0).cast("long").alias(COL_PLAYS),
        F.lit(0).cast("long").alias(COL_COMPLETIONS),
        F.lit(0.0).alias(COL_WATCH_HOURS),
    )
    return metrics.unionByName(quiet).select(
        _lit_date(run_day).alias(COL_RUN_DATE),
        *keys,
        COL_ACTIVE_USERS,
        COL_PLAYS,
        COL_COMPLETIONS,
        COL_WATCH_HOURS,
        _ratio(F.col(COL_COMPLETIONS), F.col(COL_PLAYS)).alias(COL_COMPLETION_RATE),
    )


# --- item performance -----------------------------------------------------------------------------
def item_performance(
    events: DataFrame,
    items: DataFrame,
    run_date: dt.date | str,
    days: int = 1,
) -> DataFrame:
    """Per item per event date: plays, viewers, completion, watch ratio, likes, ratings, trend.

    Parameters
    ----------
    events : DataFrame
        ``bronze/events`` rows (``user_id``, ``item_id``, ``event_type``, ``event_date``,
        ``watch_seconds``, ``rating``).
    items : DataFrame
        ``silver/items`` rows (``item_id``, ``duration_seconds``); the duration gives the watch ratio.
    run_date : date or str
        The run date.
    days : int
        Event dates covered, ending on ``run_date`` (default 1: the run date only).

    Returns
    -------
    DataFrame
        ``run_date, event_date, item_id, impressions, plays, unique_viewers, completions,
        completion_rate, avg_watch_ratio, likes, rating_mean, rating_count, plays_prev7_mean,
        trend``: one row per item with any event that day. ``avg_watch_ratio`` is the mean over the
        day's viewers of ``min(1, watch seconds / duration)`` (null without a positive duration);
        ``plays_prev7_mean`` the mean daily plays over the 7 days before (days without plays count
        as 0); ``trend = plays / plays_prev7_mean`` (null when that mean is 0).

    Raises
    ------
    ValueError
        When a required column is missing or ``days < 1``.
    """
    func = "item_performance"
    _require(events, [*EVENT_COLUMNS, COL_WATCH_SECONDS, COL_RATING], "events", func)
    _require(items, [COL_ITEM, COL_DURATION], "items", func)
    _positive(days, "days", func)
    run_day = as_date(run_date)
    start = run_day - dt.timedelta(days=days - 1)
    history_start = start - dt.timedelta(days=TREND_DAYS)

    rated = (F.col(COL_EVENT_TYPE) == EVENT_RATE) & F.col(COL_RATING).isNotNull()
    per_viewer = (
        _events_between(events, history_start, run_day)
        .groupBy(COL_ITEM, COL_EVENT_DATE, COL_USER)
        .agg(
            F.sum(_is(EVENT_IMPRESSION)).alias(COL_IMPRESSIONS),
            F.sum(_is(EVENT_PLAY)).alias(COL_PLAYS),
            F.sum(_is(EVENT_COMPLETE)).alias(COL_COMPLETIONS),
            F.sum(_is(EVENT_LIKE)).alias(COL_LIKES),
            F.max(_is_watch()).alias("_viewer"),
            F.sum(_watch_seconds()).alias(_WATCH_S),
            F.sum(F.when(rated, F.col(COL_RATING))).alias("_rating_sum"),
            F.count(F.when(rated, F.lit(1))).alias(COL_RATING_COUNT),
        )
        .join(items.select(COL_ITEM, COL_DURATION), on=COL_ITEM, how="left")
        .withColumn(
            "_watch_ratio",
            F.when(
                F.col("_viewer") & (F.col(COL_DURATION) > 0),
                F.least(F.lit(1.0), F.col(_WATCH_S) / F.col(COL_DURATION)),
            ),
        )
    )
    daily = per_viewer.groupBy(COL_ITEM, COL_EVENT_DATE).agg(
        F.sum(COL_IMPRESSIONS).cast("long").alias(COL_IMPRESSIONS),
        F.sum(COL_PLAYS).cast("long").alias(COL_PLAYS),
        F.count(F.when(F.col("_viewer"), F.lit(1))).cast("long").alias(COL_UNIQUE_VIEWERS),
        F.sum(COL_COMPLETIONS).cast("long").alias(COL_COMPLETIONS),
        F.avg("_watch_ratio").alias(COL_AVG_WATCH_RATIO),
        F.sum(COL_LIKES).cast("long").alias(COL_LIKES),
        F.sum("_rating_sum").alias("_rating_sum"),
        F.sum(COL_RATING_COUNT).cast("long").alias(COL_RATING_COUNT),
    )
    previous = Window.partitionBy(COL_ITEM).orderBy(_day_number(COL_EVENT_DATE)).rangeBetween(-TREND_DAYS, -1)
    prev_mean = F.coalesce(F.sum(COL_PLAYS).over(previous), F.lit(0)).cast("double") / TREND_DAYS
    return (
        daily.withColumn(COL_PLAYS_PREV7_MEAN, prev_mean)
        .where(F.col(COL_EVENT_DATE) >= _lit_date(start))
        .select(
            _lit_date(run_day).alias(COL_RUN_DATE),
            COL_EVENT_DATE,
            COL_ITEM,
            COL_IMPRESSIONS,
            COL_PLAYS,
            COL_UNIQUE_VIEWERS,
            COL_COMPLETIONS,
            _ratio(F.col(COL_COMPLETIONS), F.col(COL_PLAYS)).alias(COL_COMPLETION_RATE),
            F.col(COL_AVG_WATCH_RATIO).cast("double").alias(COL_AVG_WATCH_RATIO),
            COL_LIKES,
            _ratio(F.col("_rating_sum"), F.col(COL_RATING_COUNT)).alias(COL_RATING_MEAN),
            COL_RATING_COUNT,
            COL_PLAYS_PREV7_MEAN,
            _ratio(F.col(COL_PLAYS), F.col(COL_PLAYS_PREV7_MEAN)).alias(COL_TREND),
        )
    )


# --- genre trends ---------------------------------------------------------------------------------
def genre_trends(
    events: DataFrame,
    items: DataFrame,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
) -> DataFrame:
    """Per genre per event date: watch-time share, growth, new and returning viewers.

    Parameters
    ----------
    events : DataFrame
        ``bronze/events`` rows (``user_id``, ``item_id``, ``event_type``, ``event_date``,
        ``watch_seconds``).
    items : DataFrame
        ``silver/items`` rows (``item_id``, ``genres``).
    run_date : date or str
        The run date.
    days : int
        Event dates covered, ending on ``run_date`` (default 28).

    Returns
    -------
    DataFrame
        ``run_date, event_date, genre, viewers, new_viewers, returning_viewers, plays, watch_hours,
        watch_share, growth_vs_prev_day, growth_vs_prev_week``: one row per genre watched that day.
        A viewer is *new* to a genre on the first day (over all events up to ``run_date``) they
        watch it. ``watch_share`` is the genre's share of the day's watch time; the growths are
        ``watch_hours / watch_hours(day - 1) - 1`` and ``watch_hours / watch_hours(day - 7) - 1``
        (null when the earlier day had no watch time in the genre). Multi-genre items split their
        plays and watch time evenly across their genres.

    Raises
    ------
    ValueError
        When a required column is missing or ``days < 1``.
    """
    func = "genre_trends"
    _require(events, [*EVENT_COLUMNS, COL_WATCH_SECONDS], "events", func)
    _require(items, [COL_ITEM, COL_GENRES], "items", func)
    _positive(days, "days", func)
    run_day = as_date(run_date)
    start = run_day - dt.timedelta(days=days - 1)
    history_start = start - dt.timedelta(days=7)

    watched = _with_genres(
        _events_between(events, None, run_day)
        .where(_is_watch())
        .select(
            COL_USER,
            COL_ITEM,
            COL_EVENT_DATE,
            _is(EVENT_PLAY).alias("_play"),
            _watch_seconds().alias(_WATCH_S),
        ),
        item_genres(items),
    )
    first_day = watched.groupBy(COL_USER, COL_GENRE).agg(F.min(COL_EVENT_DATE).alias(_FIRST_DATE))
    per_viewer = (
        watched.where(F.col(COL_EVENT_DATE) >= _lit_date(history_start))
        .groupBy(COL_GENRE, COL_EVENT_DATE, COL_USER)
        .agg(
            F.sum(F.col("_play") * F.col(_WEIGHT)).alias(COL_PLAYS),
            F.sum(F.col(_WATCH_S) * F.col(_WEIGHT)).alias(_WATCH_S),
        )
        .join(first_day, on=[COL_USER, COL_GENRE], how="left")
    )
    daily = per_viewer.groupBy(COL_GENRE, COL_EVENT_DATE).agg(
        F.count(F.lit(1)).alias(COL_VIEWERS),
        F.sum((F.col(COL_EVENT_DATE) == F.col(_FIRST_DATE)).cast("long")).alias(COL_NEW_VIEWERS),
        F.sum(COL_PLAYS).alias(COL_PLAYS),
        F.sum(_WATCH_S).alias(_WATCH_S),
    )
    by_day = Window.partitionBy(COL_EVENT_DATE)
    ordered = Window.partitionBy(COL_GENRE).orderBy(_day_number(COL_EVENT_DATE))
    prev_day = F.sum(_WATCH_S).over(ordered.rangeBetween(-1, -1))
    prev_week = F.sum(_WATCH_S).over(ordered.rangeBetween(-7, -7))
    return (
        daily.select(
            "*",
            F.sum(_WATCH_S).over(by_day).alias("_day_watch"),
            prev_day.alias("_prev_day"),
            prev_week.alias("_prev_week"),
        )
        .where(F.col(COL_EVENT_DATE) >= _lit_date(start))
        .select(
            _lit_date(run_day).alias(COL_RUN_DATE),
            COL_EVENT_DATE,
            COL_GENRE,
            F.col(COL_VIEWERS).cast("long").alias(COL_VIEWERS),
            F.col(COL_NEW_VIEWERS).cast("long").alias(COL_NEW_VIEWERS),
            (F.col(COL_VIEWERS) - F.col(COL_NEW_VIEWERS)).cast("long").alias(COL_RETURNING_VIEWERS),
            F.col(COL_PLAYS).cast("double").alias(COL_PLAYS),
            (F.col(_WATCH_S) / SECONDS_PER_HOUR).cast("double").alias(COL_WATCH_HOURS),
            _ratio(F.col(_WATCH_S), F.col("_day_watch")).alias(COL_WATCH_SHARE),
            (_ratio(F.col(_WATCH_S), F.col("_prev_day")) - 1.0).alias(COL_GROWTH_DAY),
            (_ratio(F.col(_WATCH_S), F.col("_prev_week")) - 1.0).alias(COL_GROWTH_WEEK),
        )
    )


# --- cohort retention -----------------------------------------------------------------------------
def _week_start(col: Column) -> Column:
    """Monday of the week of ``col`` (a date)."""
    return F.to_date(F.date_trunc("week", col))


def cohort_retention(
    events: DataFrame,
    users: DataFrame,
    run_date: dt.date | str,
    weeks: int = DEFAULT_COHORT_WEEKS,
) -> DataFrame:
    """Weekly signup cohorts x weeks since signup: the share of each cohort active that week.

    Parameters
    ----------
    events : DataFrame
        ``bronze/events`` rows (``user_id``, ``event_type``, ``event_date``).
    users : DataFrame
        ``silver/users`` rows (``user_id``, ``signup_date``). A user without ``signup_date``, or
        absent from ``users``, belongs to the week of their first event.
    run_date : date or str
        The run date; its (partial) week is the last week counted.
    weeks : int
        Cohorts of the last ``weeks`` weeks, the run date's week included (default 26).

    Returns
    -------
    DataFrame
        ``run_date, cohort_week, weeks_since_signup, cohort_size, active_users, retained_share``:
        one row per cohort and every week from 0 to the run date's week (zeros included). Weeks
        start on Monday; active means any event but an impression in that week.

    Raises
    ------
    ValueError
        When a required column is missing or ``weeks < 1``.
    """
    func = "cohort_retention"
    _require(events, [COL_USER, COL_EVENT_TYPE, COL_EVENT_DATE], "events", func)
    _require(users, [COL_USER, COL_SIGNUP_DATE], "users", func)
    _positive(weeks, "weeks", func)
    run_day = as_date(run_date)
    run_week = run_day - dt.timedelta(days=run_day.weekday())
    first_week = run_week - dt.timedelta(weeks=weeks - 1)

    upto = _events_between(events, None, run_day)
    first_event = upto.groupBy(COL_USER).agg(F.min(COL_EVENT_DATE).alias(_FIRST_DATE))
    joined_on = F.coalesce(F.col(COL_SIGNUP_DATE), F.col(_FIRST_DATE))
    members = (
        users.select(COL_USER, COL_SIGNUP_DATE)
        .join(first_event, on=COL_USER, how="full")
        .where(joined_on.isNotNull() & (joined_on <= _lit_date(run_day)))
        .select(COL_USER, _week_start(joined_on).alias(COL_COHORT_WEEK))
        .where(F.col(COL_COHORT_WEEK) >= _lit_date(first_week))
    )
    active = (
        upto.where(F.col(COL_EVENT_TYPE) != EVENT_IMPRESSION)
        .select(COL_USER, _week_start(F.col(COL_EVENT_DATE)).alias("_week"))
        .distinct()
        .join(members, on=COL_USER, how="inner")
        .select(
            COL_COHORT_WEEK,
            (F.datediff(F.col("_week"), F.col(COL_COHORT_WEEK)) / 7).cast("int").alias(COL_WEEKS_SINCE),
        )
        .where(F.col(COL_WEEKS_SINCE) >= 0)
        .groupBy(COL_COHORT_WEEK, COL_WEEKS_SINCE)
        .agg(F.count(F.lit(1)).alias(COL_ACTIVE_USERS))
    )
    grid = (
        members.groupBy(COL_COHORT_WEEK)
        .agg(F.count(F.lit(1)).alias(COL_COHORT_SIZE))
        .select(
            COL_COHORT_WEEK,
            COL_COHORT_SIZE,
            F.explode(
                F.sequence(
                    F.lit(0), (F.datediff(_lit_date(run_week), F.col(COL_COHORT_WEEK)) / 7).cast("int")
                )
            ).alias(COL_WEEKS_SINCE),
        )
    )
    return grid.join(active, on=[COL_COHORT_WEEK, COL_WEEKS_SINCE], how="left").select(
        _lit_date(run_day).alias(COL_RUN_DATE),
        COL_COHORT_WEEK,
        F.col(COL_WEEKS_SINCE).cast("int").alias(COL_WEEKS_SINCE),
        F.col(COL_COHORT_SIZE).cast("long").alias(COL_COHORT_SIZE),
        F.coalesce(F.col(COL_ACTIVE_USERS), F.lit(0)).cast("long").alias(COL_ACTIVE_USERS),
        _ratio(F.coalesce(F.col(COL_ACTIVE_USERS), F.lit(0)), F.col(COL_COHORT_SIZE)).alias(
            COL_RETAINED_SHARE
        ),
    )


# --- recommendation coverage ----------------------------------------------------------------------
def _exposures(recommendations: DataFrame, run_day: dt.date) -> DataFrame:
    """``(algorithm, item_id, exposures)``: times each item is in a list of ``run_day``."""
    return (
        recommendations.where(F.col(COL_RUN_DATE) == _lit_date(run_day))
        .groupBy(COL_ALGORITHM, COL_ITEM)
        .agg(F.count(F.lit(1)).alias(COL_EXPOSURES))
    )


def gini(df: DataFrame, value_col: str, group_cols: list[str], order_col: str) -> DataFrame:
    """Gini coefficient of ``value_col`` within each group of ``group_cols``.

    ``G = 2 * sum(i * x_i) / (n * sum(x)) - (n + 1) / n`` over the values sorted ascending
    (``i = 1..n``): 0 when every row has the same value, ``(n - 1) / n`` when one row has it all.

    Parameters
    ----------
    df : DataFrame
        One row per unit (zeros included: a unit that is absent does not count).
    value_col : str
        The non-negative quantity (e.g. exposures).
    group_cols : list of str
        Grouping columns.
    order_col : str
        Tie-breaker so that the ranking is deterministic.

    Returns
    -------
    DataFrame
        ``group_cols + ['gini']``; null where the group's total is 0.
    """
    _require(df, [value_col, order_col, *group_cols], "df", "gini")
    ranked = Window.partitionBy(*group_cols).orderBy(F.col(value_col), F.col(order_col))
    return (
        df.select(
            *group_cols, F.col(value_col).cast("double").alias("_x"), F.row_number().over(ranked).alias("_i")
        )
        .groupBy(*group_cols)
        .agg(
            F.sum(F.col("_i") * F.col("_x")).alias("_s_ix"),
            F.sum("_x").alias("_s_x"),
            F.count(F.lit(1)).cast("double").alias("_n"),
        )
        .select(
            *group_cols,
            F.when(
                F.col("_s_x") > 0,
                2.0 * F.col("_s_ix") / (F.col("_n") * F.col("_s_x")) - (F.col("_n") + 1.0) / F.col("_n"),
            ).alias("gini"),
        )
    )


def recommendation_coverage(
    recommendations: DataFrame,
    events: DataFrame,
    items: DataFrame,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
) -> DataFrame:
    """Per algorithm: users served, catalog coverage and concentration (Gini) of exposure.

    Parameters
    ----------
    recommendations : DataFrame
        ``gold/recommendations`` rows (``run_date``, ``user_id``, ``item_id``, ``algorithm``); only
        the rows of ``run_date`` count.
    events : DataFrame
        ``bronze/events`` rows (``item_id``, ``event_type``, ``event_date``): the ``play`` events
        of the ``days`` event dates ending on ``run_date`` give the consumption baseline.
    items : DataFrame
        ``silver/items`` rows (``item_id``): the catalog.
    run_date : date or str
        The run date.
    days : int
        Consumption window (default 28).

    Returns
    -------
    DataFrame
        ``run_date, algorithm, users, items_recommended, catalog_size, catalog_coverage,
        exposures, gini_exposure, gini_consumption``. Exposure is the number of lists an item
        appears in; ``catalog_coverage`` the share of catalog items recommended at least once;
        ``gini_exposure`` the Gini coefficient of exposure over all catalog items (never
        recommended ones count 0): 0 is perfectly even, near 1 is all exposure on one item;
        ``gini_consumption`` the same coefficient of plays over the catalog (the same on every
        row): an algorithm above it concentrates exposure more than users concentrate viewing.

    Raises
    ------
    ValueError
        When a required column is missing or ``days < 1``.
    """
    func = "recommendation_coverage"
    _require(recommendations, RECOMMENDATION_COLUMNS, "recommendations", func)
    _require(events, [COL_ITEM, COL_EVENT_TYPE, COL_EVENT_DATE], "events", func)
    _require(items, [COL_ITEM], "items", func)
    _positive(days, "days", func)
    run_day = as_date(run_date)
    start = run_day - dt.timedelta(days=days - 1)

    recs = recommendations.where(F.col(COL_RUN_DATE) == _lit_date(run_day))
    exposures = _exposures(recommendations, run_day)
    catalog = items.select(COL_ITEM).distinct()
    catalog_size = catalog.agg(F.count(F.lit(1)).alias(COL_CATALOG_SIZE))
    algorithms = exposures.select(COL_ALGORITHM).distinct()

    per_catalog_item = (
        algorithms.crossJoin(catalog)
        .join(exposures, on=[COL_ALGORITHM, COL_ITEM], how="left")
        .select(COL_ALGORITHM, COL_ITEM, F.coalesce(F.col(COL_EXPOSURES), F.lit(0)).alias(COL_EXPOSURES))
    )
    concentration = gini(per_catalog_item, COL_EXPOSURES, [COL_ALGORITHM], COL_ITEM).withColumnRenamed(
        "gini", COL_GINI
    )
    covered = (
        exposures.join(catalog, on=COL_ITEM, how="left_semi")
        .groupBy(COL_ALGORITHM)
        .agg(F.count(F.lit(1)).alias("_covered"))
    )
    plays = (
        _events_between(events, start, run_day)
        .where(F.col(COL_EVENT_TYPE) == EVENT_PLAY)
        .groupBy(COL_ITEM)
        .agg(F.count(F.lit(1)).alias(COL_PLAYS))
    )
    # One group holding the whole catalog (a constant key: the window needs a partition column).
    consumption = gini(
        catalog.join(plays, on=COL_ITEM, how="left").select(
            F.lit(1).alias("_catalog"), COL_ITEM, F.coalesce(F.col(COL_PLAYS), F.lit(0)).alias(COL_PLAYS)
        ),
        COL_PLAYS,
        ["_catalog"],
        COL_ITEM,
    ).select(F.col("gini").alias(COL_GINI_CONSUMPTION))
    served = recs.groupBy(COL_ALGORITHM).agg(
        F.countDistinct(COL_USER).alias(COL_USERS),
        F.countDistinct(COL_ITEM).alias(COL_ITEMS_RECOMMENDED),
        F.count(F.lit(1)).alias(COL_EXPOSURES),
    )
    return (
        served.join(covered, on=COL_ALGORITHM, how="left")
        .join(concentration, on=COL_ALGORITHM, how="left")
        .crossJoin(catalog_size)
        .crossJoin(consumption)
        .select(
            _lit_date(run_day).alias(COL_RUN_DATE),
            COL_ALGORITHM,
            F.col(COL_USERS).cast("long").alias(COL_USERS),
            F.col(COL_ITEMS_RECOMMENDED).cast("long").alias(COL_ITEMS_RECOMMENDED),
            F.col(COL_CATALOG_SIZE).cast("long").alias(COL_CATALOG_SIZE),
            _ratio(F.coalesce(F.col("_covered"), F.lit(0)), F.col(COL_CATALOG_SIZE)).alias(
                COL_CATALOG_COVERAGE
            ),
            F.col(COL_EXPOSURES).cast("long").alias(COL_EXPOSURES),
            F.col(COL_GINI).cast("double").alias(COL_GINI),
            F.col(COL_GINI_CONSUMPTION).cast("double").alias(COL_GINI_CONSUMPTION),
        )
    )


def genre_exposure(
    recommendations: DataFrame,
    events: DataFrame,
    items: DataFrame,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
) -> DataFrame:
    """Per algorithm x genre: share of exposure vs share of consumption (whom the lists favour).

    Parameters
    ----------
    recommendations : DataFrame
        ``gold/recommendations`` rows; only those of ``run_date`` count.
    events : DataFrame
        ``bronze/events`` rows (``item_id``, ``event_type``, ``event_date``): consumption is the
        ``play`` events of the ``days`` event dates ending on ``run_date``.
    items : DataFrame
        ``silver/items`` rows (``item_id``, ``genres``).
    run_date : date or str
        The run date.
    days : int
        Consumption window (default 28).

    Returns
    -------
    DataFrame
        ``run_date, algorithm, genre, exposures, exposure_share, plays, consumption_share,
        exposure_lift``: one row per algorithm and every genre it exposes or users played.
        ``exposure_lift = exposure_share / consumption_share`` (> 1: the algorithm recommends the
        genre more than users watch it; null when the genre was not played).

    Raises
    ------
    ValueError
        When a required column is missing or ``days < 1``.
    """
    func = "genre_exposure"
    _require(recommendations, RECOMMENDATION_COLUMNS, "recommendations", func)
    _require(events, [COL_ITEM, COL_EVENT_TYPE, COL_EVENT_DATE], "events", func)
    _require(items, [COL_ITEM, COL_GENRES], "items", func)
    _positive(days, "days", func)
    run_day = as_date(run_date)
    start = run_day - dt.timedelta(days=days - 1)

    genres = item_genres(items)
    exposed = (
        _with_genres(_exposures(recommendations, run_day), genres)
        .groupBy(COL_ALGORITHM, COL_GENRE)
        .agg(F.sum(F.col(COL_EXPOSURES) * F.col(_WEIGHT)).alias(COL_EXPOSURES))
    )
    consumed = (
        _with_genres(
            _events_between(events, start, run_day)
            .where(F.col(COL_EVENT_TYPE) == EVENT_PLAY)
            .select(COL_ITEM),
            genres,
        )
        .groupBy(COL_GENRE)
        .agg(F.sum(_WEIGHT).alias(COL_PLAYS))
    )
    algorithms = exposed.select(COL_ALGORITHM).distinct()
    grid = algorithms.crossJoin(consumed.select(COL_GENRE)).unionByName(
        exposed.select(COL_ALGORITHM, COL_GENRE)
    )
    per_algorithm = Window.partitionBy(COL_ALGORITHM)
    exposures = F.coalesce(F.col(COL_EXPOSURES), F.lit(0.0))
    plays = F.coalesce(F.col(COL_PLAYS), F.lit(0.0))
    shares = (
        grid.distinct()
        .join(exposed, on=[COL_ALGORITHM, COL_GENRE], how="left")
        .join(consumed, on=COL_GENRE, how="left")
        .select(
            COL_ALGORITHM,
            COL_GENRE,
            exposures.cast("double").alias(COL_EXPOSURES),
            _ratio(exposures, F.sum(exposures).over(per_algorithm)).alias(COL_EXPOSURE_SHARE),
            plays.cast("double").alias(COL_PLAYS),
            _ratio(plays, F.sum(plays).over(per_algorithm)).alias(COL_CONSUMPTION_SHARE),
        )
    )
    return shares.select(
        _lit_date(run_day).alias(COL_RUN_DATE),
        COL_ALGORITHM,
        COL_GENRE,
        COL_EXPOSURES,
        COL_EXPOSURE_SHARE,
        COL_PLAYS,
        COL_CONSUMPTION_SHARE,
        _ratio(F.col(COL_EXPOSURE_SHARE), F.col(COL_CONSUMPTION_SHARE)).alias(COL_EXPOSURE_LIFT),
    )


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
        tables.replace_partition(df, warehouse, table, run_day)
        written[name] = _rows_written(spark, warehouse, table, run_day)
        log.info(
            "analytics %s: %s %d rows in %.1fs",
            run_day,
            tables.catalog_name(table),
            written[name],
            time.perf_counter() - started,
        )
    return written
