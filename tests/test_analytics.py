"""The analysts' gold tables on hand-checkable fixtures, and the notebooks that read them.

The shared fixture: 3 users x 4 items over two days (2026-03-09, a Monday, and the run date
2026-03-10), plus one event after the run date that every table must ignore.

- items: i1 (drama, comedy; 100 s), i2 (drama; 200 s), i3 (no genres, no duration), i4 (comedy;
  300 s, never watched);
- users: u1 (FR, signed up 2026-03-02), u2 (no country, no signup date), u3 (FR, signed up
  2026-03-09, only impressions), u4 (signed up 2026-03-04, active only after the run date),
  u5 (signs up after the run date).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DateType

from vidrec import analytics as A
from vidrec import constants as C
from vidrec.data import schemas, tables

D0 = dt.date(2026, 3, 3)
D1 = dt.date(2026, 3, 9)
D2 = dt.date(2026, 3, 10)
D3 = dt.date(2026, 3, 11)
RUN = D2
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _event(
    eid: str,
    user: str,
    item: str,
    event_type: str,
    day: dt.date,
    device: str | None = None,
    watch: float | None = None,
    rating: float | None = None,
) -> tuple[Any, ...]:
    ts = dt.datetime.combine(day, dt.time(12, int(eid[1:]) % 60))
    return (eid, user, item, event_type, ts, watch, rating, None, device, None, day, ts, "test.jsonl")


EVENTS = [
    _event("e1", "u1", "i1", "play", D1, "tv", 60.0),
    _event("e2", "u1", "i1", "complete", D1, "tv", 50.0),
    _event("e3", "u2", "i2", "play", D1, "mobile", 100.0),
    _event("e4", "u1", "i2", "like", D1, "tv"),
    _event("e5", "u1", "i2", "play", D2, "tv", 50.0),
    _event("e6", "u2", "i1", "play", D2, None, 30.0),
    _event("e7", "u2", "i1", "complete", D2, None, 70.0),
    _event("e8", "u2", "i1", "rate", D2, None, rating=4.0),
    _event("e9", "u1", "i1", "rate", D2, "tv", rating=5.0),
    _event("e10", "u3", "i3", "impression", D2, "web"),
    _event("e11", "u2", "i3", "play", D2, "mobile", 120.0),
    _event("e12", "u4", "i1", "play", D3, "tv", 999.0),
]
ITEMS = [
    ("i1", ["drama", "comedy"], 100.0),
    ("i2", ["drama"], 200.0),
    ("i3", None, None),
    ("i4", ["comedy"], 300.0),
]
USERS = [
    ("u1", dt.date(2026, 3, 2), "FR"),
    ("u2", None, None),
    ("u3", D1, "FR"),
    ("u4", dt.date(2026, 3, 4), "DE"),
    ("u5", dt.date(2026, 3, 20), "DE"),
]
RECOMMENDATIONS = [
    (RUN, "u1", 1, "i1", 0.9, "als", "als-1", "because you watched i2"),
    (RUN, "u1", 2, "i3", 0.5, "als", "als-1", None),
    (RUN, "u2", 1, "i1", 0.8, "als", "als-1", None),
    (RUN, "u2", 2, "i4", 0.4, "als", "als-1", None),
    (RUN, "u1", 1, "i2", 0.7, "hybrid", "hybrid-1", "popular in drama"),
    (RUN, "u2", 1, "i2", 0.6, "hybrid", "hybrid-1", "popular in drama"),
    (D1, "u1", 1, "i2", 0.9, "als", "als-0", None),
]


def _events(spark: SparkSession, rows: list[tuple[Any, ...]] = EVENTS) -> DataFrame:
    return spark.createDataFrame(rows, schemas.BRONZE_EVENTS)


def _items(spark: SparkSession, rows: list[tuple[Any, ...]] = ITEMS) -> DataFrame:
    full = [(i, f"title {i}", g, None, None, 2020, d, None, "en", None, None, None, D1) for i, g, d in rows]
    return spark.createDataFrame(full, schemas.SILVER_ITEMS)


def _users(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([(u, s, c, None, D1) for u, s, c in USERS], schemas.SILVER_USERS)


def _recommendations(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(RECOMMENDATIONS, schemas.RECOMMENDATIONS)


def _rows(df: DataFrame, columns: list[str], digits: int = 6) -> list[tuple[Any, ...]]:
    """Sorted tuples of ``columns`` with floats rounded (None sorts first)."""

    def norm(v: Any) -> Any:
        return round(v, digits) if isinstance(v, float) else v

    out = [tuple(norm(r[c]) for c in columns) for r in df.select(*columns).collect()]
    return sorted(out, key=lambda t: tuple((v is not None, v) for v in t))


def _sorted(rows: list[tuple[Any, ...]], digits: int = 6) -> list[tuple[Any, ...]]:
    norm = [tuple(round(v, digits) if isinstance(v, float) else v for v in r) for r in rows]
    return sorted(norm, key=lambda t: tuple((v is not None, v) for v in t))


# --- daily engagement -----------------------------------------------------------------------------
ENGAGEMENT_COLS = [
    "event_date",
    "device",
    "country",
    "active_users",
    "plays",
    "completions",
    "watch_hours",
    "completion_rate",
]


def _h(seconds: float) -> float:
    return seconds / 3600.0


@pytest.mark.spark
def test_daily_engagement(spark: SparkSession) -> None:
    out = A.daily_engagement(_events(spark), _users(spark), RUN, days=2)
    assert _rows(out, ENGAGEMENT_COLS) == _sorted(
        [
            (D1, "tv", "FR", 1, 1, 1, _h(110), 1.0),
            (D1, "mobile", "unknown", 1, 1, 0, _h(100), 0.0),
            (D1, "tv", "all", 1, 1, 1, _h(110), 1.0),
            (D1, "mobile", "all", 1, 1, 0, _h(100), 0.0),
            (D1, "all", "FR", 1, 1, 1, _h(110), 1.0),
            (D1, "all", "unknown", 1, 1, 0, _h(100), 0.0),
            (D1, "all", "all", 2, 2, 1, _h(210), 0.5),
            (D2, "tv", "FR", 1, 1, 0, _h(50), 0.0),
            (D2, "unknown", "unknown", 1, 1, 1, _h(100), 1.0),
            (D2, "web", "FR", 0, 0, 0, 0.0, None),  # u3: impressions only, not active
            (D2, "mobile", "unknown", 1, 1, 0, _h(120), 0.0),
            (D2, "tv", "all", 1, 1, 0, _h(50), 0.0),
            (D2, "unknown", "all", 1, 1, 1, _h(100), 1.0),
            (D2, "web", "all", 0, 0, 0, 0.0, None),
            (D2, "mobile", "all", 1, 1, 0, _h(120), 0.0),
            (D2, "all", "FR", 1, 1, 0, _h(50), 0.0),
            (D2, "all", "unknown", 1, 2, 1, _h(220), 0.5),
            (D2, "all", "all", 2, 3, 1, _h(270), 1 / 3),
        ]
    )
    assert {r["run_date"] for r in out.select("run_date").collect()} == {RUN}


@pytest.mark.spark
def test_daily_engagement_empty_run_day_gets_zero_row(spark: SparkSession) -> None:
    events = _events(spark, [e for e in EVENTS if e[10] == D1])
    out = A.daily_engagement(events, _users(spark), RUN, days=2).where("device = 'all' AND country = 'all'")
    assert _rows(out, ENGAGEMENT_COLS) == _sorted(
        [
            (D1, "all", "all", 2, 2, 1, _h(210), 0.5),
            (D2, "all", "all", 0, 0, 0, 0.0, None),
        ]
    )


@pytest.mark.spark
def test_daily_engagement_no_events_is_empty(spark: SparkSession) -> None:
    assert A.daily_engagement(_events(spark, []), _users(spark), RUN).collect() == []


# --- item performance -----------------------------------------------------------------------------
ITEM_COLS = [
    "event_date",
    "item_id",
    "impressions",
    "engagements",
    "engaged_users",
    "plays",
    "unique_viewers",
    "completions",
    "completion_rate",
    "avg_watch_ratio",
    "likes",
    "rating_mean",
    "rating_count",
    "plays_prev7_mean",
    "engagements_prev7_mean",
    "trend",
]


@pytest.mark.spark
def test_item_performance(spark: SparkSession) -> None:
    out = A.item_performance(_events(spark), _items(spark), RUN, days=2)
    assert _rows(out, ITEM_COLS) == _sorted(
        [
            # u1 watched 110 s of a 100 s item: the ratio is capped at 1
            (D1, "i1", 0, 2, 1, 1, 1, 1, 1.0, 1.0, 0, None, 0, 0.0, 0.0, None),
            # u1 only liked i2 on D1: an engagement, not a viewer
            (D1, "i2", 0, 2, 2, 1, 1, 0, 0.0, 0.5, 1, None, 0, 0.0, 0.0, None),
            # a play, a completion and two ratings: 4 engagements against 2 the day before (2/7 a day)
            (D2, "i1", 0, 4, 2, 1, 1, 1, 1.0, 1.0, 0, 4.5, 2, 1 / 7, 2 / 7, 14.0),
            (D2, "i2", 0, 1, 1, 1, 1, 0, 0.0, 0.25, 0, None, 0, 1 / 7, 2 / 7, 3.5),
            # i3 has no duration: no watch ratio; nothing before: no trend; an impression is no engagement
            (D2, "i3", 1, 1, 1, 1, 1, 0, 0.0, None, 0, None, 0, 0.0, 0.0, None),
        ]
    )


@pytest.mark.spark
def test_item_performance_defaults_to_the_run_date_only(spark: SparkSession) -> None:
    out = A.item_performance(_events(spark, [e for e in EVENTS if e[10] == D1]), _items(spark), RUN)
    assert out.collect() == []
    out = A.item_performance(_events(spark), _items(spark), RUN)
    assert _rows(out, ["event_date", "item_id", "plays"]) == [(D2, "i1", 1), (D2, "i2", 1), (D2, "i3", 1)]


# --- genre trends ---------------------------------------------------------------------------------
GENRE_COLS = [
    "event_date",
    "genre",
    "viewers",
    "new_viewers",
    "returning_viewers",
    "engagements",
    "plays",
    "watch_hours",
    "watch_share",
    "engagement_share",
    "growth_vs_prev_day",
    "growth_vs_prev_week",
]


@pytest.mark.spark
def test_genre_trends(spark: SparkSession) -> None:
    out = A.genre_trends(_events(spark), _items(spark), RUN, days=2)
    # i1 splits half to drama, half to comedy; i3 has no genres: 'unknown'; likes and ratings are
    # engagement (u1 rated i1 on D2: a returning comedy viewer without a play)
    assert _rows(out, GENRE_COLS) == _sorted(
        [
            (D1, "drama", 2, 2, 0, 3.0, 1.5, _h(155), 155 / 210, 3 / 4, None, None),
            (D1, "comedy", 1, 1, 0, 1.0, 0.5, _h(55), 55 / 210, 1 / 4, None, None),
            (D2, "drama", 2, 0, 2, 3.0, 1.5, _h(100), 100 / 270, 3 / 6, 0.0, None),
            (D2, "comedy", 2, 1, 1, 2.0, 0.5, _h(50), 50 / 270, 2 / 6, 1.0, None),
            (D2, "unknown", 1, 1, 0, 1.0, 1.0, _h(120), 120 / 270, 1 / 6, None, None),
        ]
    )


@pytest.mark.spark
def test_genre_trends_growth_vs_prev_week(spark: SparkSession) -> None:
    events = _events(
        spark,
        [
            _event("e1", "u1", "i2", "play", D0, "tv", 100.0),
            _event("e2", "u1", "i2", "play", D2, "tv", 150.0),
        ],
    )
    out = A.genre_trends(events, _items(spark), RUN, days=1)
    assert _rows(out, GENRE_COLS) == _sorted([(D2, "drama", 1, 0, 1, 1.0, 1.0, _h(150), 1.0, 1.0, None, 0.0)])


# --- ratings only (MovieLens-like: no plays, no watch time, no device) ---------------------------
RATINGS_ONLY = [
    _event("r1", "u1", "i1", "rate", D0, rating=4.0),
    _event("r2", "u2", "i2", "rate", D1, rating=3.0),
    _event("r3", "u1", "i2", "rate", D2, rating=5.0),
    _event("r4", "u2", "i1", "rate", D2, rating=2.0),
    _event("r5", "u3", "i1", "rate", D2, rating=4.0),
]


@pytest.mark.spark
def test_genre_trends_and_item_performance_count_ratings_on_ratings_only_data(spark: SparkSession) -> None:
    events = _events(spark, RATINGS_ONLY)
    items = _items(spark, [(i, g, None) for i, g, _ in ITEMS])  # no durations either
    trends = A.genre_trends(events, items, RUN, days=2)
    assert _rows(trends, GENRE_COLS) == _sorted(
        [
            (D1, "drama", 1, 1, 0, 1.0, 0.0, 0.0, None, 1.0, None, None),
            # D2: i2 (drama) and i1 twice (half drama, half comedy); u1 rated i1 a week before (D0)
            (D2, "drama", 3, 1, 2, 2.0, 0.0, 0.0, None, 2 / 3, 1.0, 2.0 / 0.5 - 1),
            (D2, "comedy", 2, 2, 0, 1.0, 0.0, 0.0, None, 1 / 3, None, 1.0 / 0.5 - 1),
        ]
    )
    perf = A.item_performance(events, items, RUN, days=2)
    assert _rows(
        perf, ["event_date", "item_id", "engagements", "engaged_users", "rating_mean", "trend"]
    ) == _sorted([(D1, "i2", 1, 1, 3.0, None), (D2, "i1", 2, 2, 3.0, 14.0), (D2, "i2", 1, 1, 5.0, 7.0)])
    frames = A.build_all(events, items, _users(spark), None, RUN, days=2)
    assert frames["genre_trends"].count() == 3
    assert frames["item_performance"].where("engagements > 0").count() == 2  # the run date only


# --- cohort retention -----------------------------------------------------------------------------
COHORT_COLS = ["cohort_week", "weeks_since_signup", "cohort_size", "active_users", "retained_share"]


@pytest.mark.spark
@pytest.mark.parametrize(
    ("weeks", "expected"),
    [
        (
            26,
            [
                # u1 (signed up Mon 03-02) and u4 (Wed 03-04): u4 is active only after the run date
                (dt.date(2026, 3, 2), 0, 2, 0, 0.0),
                (dt.date(2026, 3, 2), 1, 2, 1, 0.5),
                # u2 (no signup date: week of the first event) and u3 (impressions only)
                (dt.date(2026, 3, 9), 0, 2, 1, 0.5),
            ],
        ),
        (1, [(dt.date(2026, 3, 9), 0, 2, 1, 0.5)]),
    ],
)
def test_cohort_retention(spark: SparkSession, weeks: int, expected: list[tuple[Any, ...]]) -> None:
    out = A.cohort_retention(_events(spark), _users(spark), RUN, weeks=weeks)
    assert _rows(out, COHORT_COLS) == _sorted(expected)


# --- recommendation coverage ----------------------------------------------------------------------
@pytest.mark.spark
def test_recommendation_coverage(spark: SparkSession) -> None:
    out = A.recommendation_coverage(_recommendations(spark), _events(spark), _items(spark), RUN)
    cols = [
        "algorithm",
        "users",
        "items_recommended",
        "catalog_size",
        "catalog_coverage",
        "exposures",
        "gini_exposure",
        "gini_consumption",
    ]
    # als exposures over the catalog: i2 0, i3 1, i4 1, i1 2 -> G = 2*13/(4*4) - 5/4 = 0.375;
    # hybrid: 0, 0, 0, 2 -> 0.75; plays i4 0, i3 1, i1 2, i2 2 -> 2*16/(4*5) - 5/4 = 0.35
    assert _rows(out, cols) == [
        ("als", 2, 3, 4, 0.75, 4, 0.375, 0.35),
        ("hybrid", 2, 1, 4, 0.25, 2, 0.75, 0.35),
    ]


@pytest.mark.spark
@pytest.mark.parametrize(("top_k", "als_shown"), [(10, (1, 1)), (2, (1, 1)), (1, (0, 0))])
def test_recommendation_coverage_counts_new_titles_shown_in_the_top_k(
    spark: SparkSession, top_k: int, als_shown: tuple[int, int]
) -> None:
    """i4 has no engagement up to the run date (a new title); i3 has only an impression and then a
    play on the run date (not new); i4's play after the run date does not count. als lists i4 at
    rank 2 for u2; hybrid never lists it."""
    late = [*EVENTS, _event("e13", "u4", "i4", "play", D3, "tv", 10.0)]
    out = A.recommendation_coverage(
        _recommendations(spark), _events(spark, late), _items(spark), RUN, top_k=top_k
    )
    cols = ["algorithm", "new_titles", "new_titles_in_top10", "users_shown_new_title"]
    assert _rows(out, cols) == [("als", 1, *als_shown), ("hybrid", 1, 0, 0)]


@pytest.mark.spark
def test_recommendation_coverage_refuses_a_top_k_below_one(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="top_k"):
        A.recommendation_coverage(_recommendations(spark), _events(spark), _items(spark), RUN, top_k=0)


@pytest.mark.spark
def test_genre_exposure(spark: SparkSession) -> None:
    out = A.genre_exposure(_recommendations(spark), _events(spark), _items(spark), RUN)
    cols = [
        "algorithm",
        "genre",
        "exposures",
        "exposure_share",
        "plays",
        "consumption_share",
        "exposure_lift",
    ]
    # plays by genre: drama 0.5 + 1 + 1 + 0.5 = 3, comedy 0.5 + 0.5 = 1, unknown 1 (e12 is after the run)
    assert _rows(out, cols) == _sorted(
        [
            ("als", "drama", 1.0, 0.25, 3.0, 0.6, 0.25 / 0.6),
            ("als", "comedy", 2.0, 0.5, 1.0, 0.2, 2.5),
            ("als", "unknown", 1.0, 0.25, 1.0, 0.2, 1.25),
            ("hybrid", "drama", 2.0, 1.0, 3.0, 0.6, 1 / 0.6),
            ("hybrid", "comedy", 0.0, 0.0, 1.0, 0.2, 0.0),
            ("hybrid", "unknown", 0.0, 0.0, 1.0, 0.2, 0.0),
        ]
    )


@pytest.mark.spark
def test_gini_of_equal_values_is_zero(spark: SparkSession) -> None:
    df = spark.createDataFrame([("a", "x", 3), ("a", "y", 3), ("b", "x", 0)], "g string, k string, v long")
    assert _rows(A.gini(df, "v", ["g"], "k"), ["g", "gini"]) == [("a", 0.0), ("b", None)]


@pytest.mark.spark
def test_gini_of_the_whole_frame_equals_the_gini_of_one_group(spark: SparkSession) -> None:
    rows = [("x", "a", 0), ("x", "b", 1), ("x", "c", 1), ("x", "d", 6), ("x", "e", 2)]
    df = spark.createDataFrame(rows, "g string, k string, v long")
    (grouped,) = _rows(A.gini(df, "v", ["g"], "k"), ["gini"])
    (whole,) = _rows(A.gini(df.drop("g"), "v", [], "k"), ["gini"])
    # sorted 0, 1, 1, 2, 6: 2 * (0 + 2 + 3 + 8 + 30) / (5 * 10) - 6 / 5
    assert whole == grouped == (pytest.approx(0.52),)
    assert _rows(A.gini(df.drop("g").limit(0), "v", [], "k"), ["gini"]) == [(None,)]


# --- argument checks and build_all ----------------------------------------------------------------
@pytest.mark.spark
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda ev, it, us, rec: A.daily_engagement(ev.drop("device"), us, RUN),
            "events has no column 'device'",
        ),
        (
            lambda ev, it, us, rec: A.daily_engagement(ev, us.drop("country"), RUN),
            "users has no column 'country'",
        ),
        (
            lambda ev, it, us, rec: A.item_performance(ev, it.drop("duration_seconds"), RUN),
            "items has no column 'duration_seconds'",
        ),
        (lambda ev, it, us, rec: A.genre_trends(ev, it.drop("genres"), RUN), "items has no column 'genres'"),
        (
            lambda ev, it, us, rec: A.cohort_retention(ev, us.drop("signup_date"), RUN),
            "users has no column 'signup_date'",
        ),
        (
            lambda ev, it, us, rec: A.recommendation_coverage(rec.drop("algorithm"), ev, it, RUN),
            "recommendations has no column 'algorithm'",
        ),
        (lambda ev, it, us, rec: A.genre_trends(ev, it, RUN, days=0), "days must be an int >= 1"),
    ],
)
def test_bad_arguments_name_the_problem(spark: SparkSession, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(_events(spark), _items(spark), _users(spark), _recommendations(spark))


def test_as_date() -> None:
    assert A.as_date("2026-03-10") == A.as_date(dt.datetime(2026, 3, 10, 5)) == RUN
    with pytest.raises(TypeError, match="run_date must be a date"):
        A.as_date(20260310)  # type: ignore[arg-type]


@pytest.mark.spark
def test_build_all_tables_carry_the_run_date(spark: SparkSession) -> None:
    frames = A.build_all(_events(spark), _items(spark), _users(spark), _recommendations(spark), RUN)
    assert list(frames) == list(A.ANALYTICS_TABLES)
    for name, df in frames.items():
        assert isinstance(df.schema["run_date"].dataType, DateType), name
    without = A.build_all(_events(spark), _items(spark), _users(spark), None, "2026-03-10")
    assert list(without) == ["daily_engagement", "item_performance", "genre_trends", "cohort_retention"]


def _write_inputs(spark: SparkSession, warehouse: str, with_recommendations: bool = True) -> None:
    tables.overwrite(_events(spark), warehouse, C.T_EVENTS, partition_by=[C.COL_EVENT_DATE])
    tables.overwrite(_items(spark), warehouse, C.T_ITEMS)
    tables.overwrite(_users(spark), warehouse, C.T_USERS)
    if with_recommendations:
        tables.overwrite(
            _recommendations(spark), warehouse, C.T_RECOMMENDATIONS, partition_by=[C.COL_RUN_DATE]
        )


@pytest.mark.spark
def test_write_all_writes_every_table(spark: SparkSession, warehouse: str) -> None:
    _write_inputs(spark, warehouse)
    written = A.write_all(spark, warehouse, RUN, days=2)
    assert written == {
        "daily_engagement": 18,
        "item_performance": 3,
        "genre_trends": 5,
        "cohort_retention": 3,
        "recommendation_coverage": 2,
        "genre_exposure": 6,
    }
    stored = tables.read(spark, warehouse, A.T_DAILY_ENGAGEMENT)
    assert stored.count() == 18
    assert (
        spark.sql(
            "select plays from vidrec_gold.daily_engagement where event_date = '2026-03-10' "
            "and device = 'all' and country = 'all'"
        ).collect()[0]["plays"]
        == 3
    )


# --- notebooks ------------------------------------------------------------------------------------
def _model_metrics(spark: SparkSession) -> DataFrame:
    rows = [
        (day, algo, f"{algo}-1", metric, 10, value, "test")
        for day, bump in ((D1, 0.0), (RUN, 0.01))
        for algo, base in (("popularity", 0.1), ("als", 0.2), ("hybrid", 0.25))
        for metric, value in (("ndcg", base + bump), ("recall", 2 * base + bump), ("coverage", base / 2))
    ]
    return spark.createDataFrame(rows, schemas.MODEL_METRICS)


@pytest.mark.notebooks
def test_execute_notebook_runs_this_interpreter(tmp_path: Path) -> None:
    import nbformat

    from vidrec.analytics.notebooks import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("answer = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import sys\nprint(sys.executable, answer)"),
    ]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    done = execute_notebook(path, {"answer": 42}, timeout=120)
    assert done.cells[1].metadata["tags"] == ["injected-parameters"]
    assert done.cells[2].outputs[0]["text"].strip() == f"{sys.executable} 42"
    assert _kernels_of_this_process() == [], "the kernel (and a Spark JVM it started) must be shut down"
    with pytest.raises(ValueError, match="parameter 'anwser' is not declared"):
        execute_notebook(path, {"anwser": 1})


def _kernels_of_this_process() -> list[int]:
    """Child processes of this test process that are still running an ipykernel."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"ipykernel" in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.spark
def test_notebooks_execute(spark: SparkSession, warehouse: str, tmp_path: Path) -> None:
    from vidrec.analytics.notebooks import execute_notebook

    _write_inputs(spark, warehouse)
    tables.replace_partition(
        _model_metrics(spark).where(f"run_date = '{D1}'"), warehouse, C.T_MODEL_METRICS, D1
    )
    tables.replace_partition(
        _model_metrics(spark).where(f"run_date = '{RUN}'"), warehouse, C.T_MODEL_METRICS, RUN
    )
    written = A.write_all(spark, warehouse, RUN, days=7)
    # rerunning a date replaces its rows rather than adding to them
    assert A.write_all(spark, warehouse, RUN, days=7) == written
    assert tables.read(spark, warehouse, A.T_GENRE_EXPOSURE).count() == written["genre_exposure"]
    tour = execute_notebook(
        NOTEBOOKS / "analyst_tour.ipynb",
        {"warehouse": warehouse},
        timeout=300,
        output_path=tmp_path / "tour.ipynb",
        cwd=tmp_path,
    )
    images = [
        o for c in tour.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 4
    why = execute_notebook(
        NOTEBOOKS / "why_recommended.ipynb",
        {"warehouse": warehouse, "user_id": "u2"},
        timeout=300,
        output_path=tmp_path / "why.ipynb",
        cwd=tmp_path,
    )
    text = "".join(
        str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
        for c in why.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "popular in drama" in text and "hybrid" in text and "title i1" in text
