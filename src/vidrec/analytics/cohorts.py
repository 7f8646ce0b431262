"""Cohort retention: the share of each sign-up week's users active in each later week."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vidrec.analytics.common import (
    _FIRST_DATE,
    COL_ACTIVE_USERS,
    COL_COHORT_SIZE,
    COL_COHORT_WEEK,
    COL_RETAINED_SHARE,
    COL_WEEKS_SINCE,
    DEFAULT_COHORT_WEEKS,
    EVENT_IMPRESSION,
    _events_between,
    _lit_date,
    _positive,
    _ratio,
    _require,
    as_date,
)
from vidrec.constants import (
    COL_EVENT_DATE,
    COL_EVENT_TYPE,
    COL_RUN_DATE,
    COL_SIGNUP_DATE,
    COL_USER,
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
