"""The analysts' gold tables: pure ``DataFrame -> DataFrame`` transforms, and the job that writes them.

Each transform takes the input tables as DataFrames and the run date, and returns the rows of one
gold table for that run date (a ``run_date`` date column on every row); none triggers a Spark job.
Only events with ``event_date <= run_date`` count. ``write_all`` is the I/O edge: it reads the input
tables, builds every table with ``build_all`` and replaces each table's ``run_date`` partition.

Conventions shared by the tables (``docs/analytics_tables.md`` documents them column by column):

- an *active* user did anything but an ``impression`` (being shown an item is not engagement);
- a *play* is a ``play`` event, a *completion* a ``complete`` event, *watch time* the sum of
  ``watch_seconds`` of ``play``/``progress``/``complete`` events (each reports the seconds watched);
- an *engagement* is an event of :data:`vidrec.constants.ENGAGED_EVENT_TYPES` (a play, completion,
  like, favorite, share or rating), so the tables mean something on ratings-only data (MovieLens) as
  well as on a video site's plays and watch time;
- a *viewer* of an item has a ``play``/``progress``/``complete`` event on it; a *viewer* of a genre
  (``genre_trends``) has any engagement or watch event on it;
- an item with several genres counts ``1/n`` of its watch time, plays and exposures toward each of
  its ``n`` genres (shares then sum to 1); an item without genres, or missing from the catalog,
  belongs to the genre ``'unknown'``; a null device or country is ``'unknown'``;
- ratios are null where their denominator is zero or missing, never a division error.
"""

from __future__ import annotations

from vidrec.analytics.build import build_all, write_all
from vidrec.analytics.cohorts import cohort_retention
from vidrec.analytics.common import (
    ANALYTICS_TABLES,
    T_COHORT_RETENTION,
    T_DAILY_ENGAGEMENT,
    T_GENRE_EXPOSURE,
    T_GENRE_TRENDS,
    T_ITEM_PERFORMANCE,
    T_RECOMMENDATION_COVERAGE,
    as_date,
    item_genres,
)
from vidrec.analytics.engagement import daily_engagement, genre_trends, item_performance
from vidrec.analytics.exposure import genre_exposure, gini, recommendation_coverage

__all__ = [
    "ANALYTICS_TABLES",
    "T_COHORT_RETENTION",
    "T_DAILY_ENGAGEMENT",
    "T_GENRE_EXPOSURE",
    "T_GENRE_TRENDS",
    "T_ITEM_PERFORMANCE",
    "T_RECOMMENDATION_COVERAGE",
    "as_date",
    "build_all",
    "cohort_retention",
    "daily_engagement",
    "genre_exposure",
    "genre_trends",
    "gini",
    "item_genres",
    "item_performance",
    "recommendation_coverage",
    "write_all",
]
