"""Item popularity: distinct engaged users in a window ending at a given time or at the last event."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from vidrec.constants import COL_EVENT_TYPE, COL_ITEM, COL_SCORE, COL_TS, COL_USER
from vidrec.models.popularity import item_popularity

T = dt.datetime(2026, 3, 30, 12, 0)
SCHEMA = f"{COL_USER} string, {COL_ITEM} string, {COL_EVENT_TYPE} string, {COL_TS} timestamp"
EVENTS = [
    ("u1", "a", "play", T),
    ("u2", "a", "play", T - dt.timedelta(days=1)),
    ("u2", "a", "complete", T - dt.timedelta(days=1)),  # the same user again: counted once
    ("u3", "a", "impression", T),  # not engagement
    ("u1", "b", "play", T - dt.timedelta(days=10)),  # outside a 7-day window ending at T
    ("u3", "b", "like", T - dt.timedelta(days=2)),
]


@pytest.mark.spark
def test_window_ends_at_last_event_by_default(spark: Any) -> None:
    events = spark.createDataFrame(EVENTS, SCHEMA)
    got = {r[COL_ITEM]: r[COL_SCORE] for r in item_popularity(events, None, 7).collect()}
    # in-window distinct users + all-time distinct users / 1e6 (the tie-break)
    assert got == pytest.approx({"a": 2 + 2e-6, "b": 1 + 2e-6})
    explicit = {r[COL_ITEM]: r[COL_SCORE] for r in item_popularity(events, T, 7).collect()}
    assert explicit == got
    later = {
        r[COL_ITEM]: r[COL_SCORE] for r in item_popularity(events, T + dt.timedelta(days=6), 7).collect()
    }
    assert later == pytest.approx({"a": 1 + 2e-6, "b": 2e-6})  # the window excludes its start


@pytest.mark.spark
def test_ranked_keeps_the_n_best_by_score_then_item_with_or_without_groups(spark: Any) -> None:
    from vidrec.constants import COL_RANK, COL_SEGMENT
    from vidrec.models.popularity import _ranked

    rows = [
        ("x", "d", 5.0),
        ("x", "b", 7.0),
        ("x", "c", 7.0),
        ("x", "a", 1.0),
        ("y", "e", 2.0),
        ("y", "f", 3.0),
    ]
    df = spark.createDataFrame(rows, f"{COL_SEGMENT} string, {COL_ITEM} string, {COL_SCORE} double")
    one = sorted((r[COL_RANK], r[COL_ITEM], r[COL_SEGMENT]) for r in _ranked(df, [], 3).collect())
    assert one == [(1, "b", "x"), (2, "c", "x"), (3, "d", "x")]  # ties broken by item id; every column kept
    grouped = sorted(
        (r[COL_SEGMENT], r[COL_RANK], r[COL_ITEM]) for r in _ranked(df, [COL_SEGMENT], 2).collect()
    )
    assert grouped == [("x", 1, "b"), ("x", 2, "c"), ("y", 1, "f"), ("y", 2, "e")]
    assert _ranked(df.limit(0), [], 3).count() == 0
    assert dict(_ranked(df, [], 3).dtypes)[COL_RANK] == "int"
