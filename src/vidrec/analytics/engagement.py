"""Engagement tables: daily engagement, item performance and genre trends."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from vidrec.analytics.common import (
    _FIRST_DATE,
    _WATCH_S,
    _WEIGHT,
    ALL,
    COL_ACTIVE_USERS,
    COL_AVG_WATCH_RATIO,
    COL_COMPLETION_RATE,
    COL_COMPLETIONS,
    COL_ENGAGED_USERS,
    COL_ENGAGEMENT_SHARE,
    COL_ENGAGEMENTS,
    COL_ENGAGEMENTS_PREV7_MEAN,
    COL_GENRE,
    COL_GROWTH_DAY,
    COL_GROWTH_WEEK,
    COL_IMPRESSIONS,
    COL_LIKES,
    COL_NEW_VIEWERS,
    COL_PLAYS,
    COL_PLAYS_PREV7_MEAN,
    COL_RATING_COUNT,
    COL_RATING_MEAN,
    COL_RETURNING_VIEWERS,
    COL_TREND,
    COL_UNIQUE_VIEWERS,
    COL_VIEWERS,
    COL_WATCH_HOURS,
    COL_WATCH_SHARE,
    DEFAULT_DAYS,
    EVENT_COLUMNS,
    EVENT_COMPLETE,
    EVENT_IMPRESSION,
    EVENT_LIKE,
    EVENT_PLAY,
    EVENT_RATE,
    SECONDS_PER_HOUR,
    TREND_DAYS,
    UNKNOWN,
    _day_number,
    _events_between,
    _is,
    _is_engaged,
    _is_watch,
    _lit_date,
    _positive,
    _ratio,
    _require,
    _watch_seconds,
    _with_genres,
    as_date,
    item_genres,
)
from vidrec.constants import (
    COL_COUNTRY,
    COL_DEVICE,
    COL_DURATION,
    COL_EVENT_DATE,
    COL_EVENT_TYPE,
    COL_GENRES,
    COL_ITEM,
    COL_RATING,
    COL_RUN_DATE,
    COL_USER,
    COL_WATCH_SECONDS,
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
    """Per item per event date: engagement of any kind, plays, viewers, completion, watch ratio, likes,
    ratings, trend.

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
        ``run_date, event_date, item_id, impressions, engagements, engaged_users, plays,
        unique_viewers, completions, completion_rate, avg_watch_ratio, likes, rating_mean,
        rating_count, plays_prev7_mean, engagements_prev7_mean, trend``: one row per item with any
        event that day. ``engagements`` counts engagement events of every kind (plays, completions,
        likes, favorites, shares, ratings) and ``engaged_users`` their distinct users, so ratings-only
        data has them too. ``avg_watch_ratio`` is the mean over the day's viewers of
        ``min(1, watch seconds / duration)`` (null without a positive duration); the ``_prev7_mean``
        columns the mean daily plays / engagements over the 7 days before (days without any count as
        0); ``trend = engagements / engagements_prev7_mean`` (null when that mean is 0).

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
            F.sum(_is_engaged().cast("long")).alias(COL_ENGAGEMENTS),
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
        F.sum(COL_ENGAGEMENTS).cast("long").alias(COL_ENGAGEMENTS),
        F.count(F.when(F.col(COL_ENGAGEMENTS) > 0, F.lit(1))).cast("long").alias(COL_ENGAGED_USERS),
        F.sum(COL_PLAYS).cast("long").alias(COL_PLAYS),
        F.count(F.when(F.col("_viewer"), F.lit(1))).cast("long").alias(COL_UNIQUE_VIEWERS),
        F.sum(COL_COMPLETIONS).cast("long").alias(COL_COMPLETIONS),
        F.avg("_watch_ratio").alias(COL_AVG_WATCH_RATIO),
        F.sum(COL_LIKES).cast("long").alias(COL_LIKES),
        F.sum("_rating_sum").alias("_rating_sum"),
        F.sum(COL_RATING_COUNT).cast("long").alias(COL_RATING_COUNT),
    )
    previous = Window.partitionBy(COL_ITEM).orderBy(_day_number(COL_EVENT_DATE)).rangeBetween(-TREND_DAYS, -1)

    def prev_mean(col: str) -> Column:
        return F.coalesce(F.sum(col).over(previous), F.lit(0)).cast("double") / TREND_DAYS

    return (
        daily.withColumn(COL_PLAYS_PREV7_MEAN, prev_mean(COL_PLAYS))
        .withColumn(COL_ENGAGEMENTS_PREV7_MEAN, prev_mean(COL_ENGAGEMENTS))
        .where(F.col(COL_EVENT_DATE) >= _lit_date(start))
        .select(
            _lit_date(run_day).alias(COL_RUN_DATE),
            COL_EVENT_DATE,
            COL_ITEM,
            COL_IMPRESSIONS,
            COL_ENGAGEMENTS,
            COL_ENGAGED_USERS,
            COL_PLAYS,
            COL_UNIQUE_VIEWERS,
            COL_COMPLETIONS,
            _ratio(F.col(COL_COMPLETIONS), F.col(COL_PLAYS)).alias(COL_COMPLETION_RATE),
            F.col(COL_AVG_WATCH_RATIO).cast("double").alias(COL_AVG_WATCH_RATIO),
            COL_LIKES,
            _ratio(F.col("_rating_sum"), F.col(COL_RATING_COUNT)).alias(COL_RATING_MEAN),
            COL_RATING_COUNT,
            COL_PLAYS_PREV7_MEAN,
            COL_ENGAGEMENTS_PREV7_MEAN,
            _ratio(F.col(COL_ENGAGEMENTS), F.col(COL_ENGAGEMENTS_PREV7_MEAN)).alias(COL_TREND),
        )
    )


# --- genre trends ---------------------------------------------------------------------------------
def genre_trends(
    events: DataFrame,
    items: DataFrame,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
) -> DataFrame:
    """Per genre per event date: engagement of any kind, watch-time share, growth, new and returning viewers.

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
        ``run_date, event_date, genre, viewers, new_viewers, returning_viewers, engagements, plays,
        watch_hours, watch_share, engagement_share, growth_vs_prev_day, growth_vs_prev_week``: one
        row per genre engaged with that day. A *viewer* of a genre has an engagement event of any
        kind (play, completion, like, favorite, share, rating) or a watch event on it, so ratings-only
        data has viewers too; a viewer is *new* to a genre on the first day (over all events up to
        ``run_date``) they engage with it. ``engagements`` counts engagement events;
        ``watch_share`` is the genre's share of the day's watch time (null on a day without watch
        time), ``engagement_share`` its share of the day's engagements; the growths are
        ``engagements / engagements(day - 1) - 1`` and ``engagements / engagements(day - 7) - 1``
        (null when the earlier day had no engagement in the genre). Multi-genre items split their
        engagements, plays and watch time evenly across their genres.

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
        .where(_is_watch() | _is_engaged())
        .select(
            COL_USER,
            COL_ITEM,
            COL_EVENT_DATE,
            _is_engaged().cast("long").alias("_engaged"),
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
            F.sum(F.col("_engaged") * F.col(_WEIGHT)).alias(COL_ENGAGEMENTS),
            F.sum(F.col("_play") * F.col(_WEIGHT)).alias(COL_PLAYS),
            F.sum(F.col(_WATCH_S) * F.col(_WEIGHT)).alias(_WATCH_S),
        )
        .join(first_day, on=[COL_USER, COL_GENRE], how="left")
    )
    daily = per_viewer.groupBy(COL_GENRE, COL_EVENT_DATE).agg(
        F.count(F.lit(1)).alias(COL_VIEWERS),
        F.sum((F.col(COL_EVENT_DATE) == F.col(_FIRST_DATE)).cast("long")).alias(COL_NEW_VIEWERS),
        F.sum(COL_ENGAGEMENTS).alias(COL_ENGAGEMENTS),
        F.sum(COL_PLAYS).alias(COL_PLAYS),
        F.sum(_WATCH_S).alias(_WATCH_S),
    )
    by_day = Window.partitionBy(COL_EVENT_DATE)
    ordered = Window.partitionBy(COL_GENRE).orderBy(_day_number(COL_EVENT_DATE))
    prev_day = F.sum(COL_ENGAGEMENTS).over(ordered.rangeBetween(-1, -1))
    prev_week = F.sum(COL_ENGAGEMENTS).over(ordered.rangeBetween(-7, -7))
    return (
        daily.select(
            "*",
            F.sum(_WATCH_S).over(by_day).alias("_day_watch"),
            F.sum(COL_ENGAGEMENTS).over(by_day).alias("_day_engagements"),
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
            F.col(COL_ENGAGEMENTS).cast("double").alias(COL_ENGAGEMENTS),
            F.col(COL_PLAYS).cast("double").alias(COL_PLAYS),
            (F.col(_WATCH_S) / SECONDS_PER_HOUR).cast("double").alias(COL_WATCH_HOURS),
            _ratio(F.col(_WATCH_S), F.col("_day_watch")).alias(COL_WATCH_SHARE),
            _ratio(F.col(COL_ENGAGEMENTS), F.col("_day_engagements")).alias(COL_ENGAGEMENT_SHARE),
            (_ratio(F.col(COL_ENGAGEMENTS), F.col("_prev_day")) - 1.0).alias(COL_GROWTH_DAY),
            (_ratio(F.col(COL_ENGAGEMENTS), F.col("_prev_week")) - 1.0).alias(COL_GROWTH_WEEK),
        )
    )
