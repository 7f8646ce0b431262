"""The stable indexes: numbering that does not depend on the order run dates are processed in."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.data import tables
from vidrec.data.matrix import extend_index, interactions_as_of

pytestmark = pytest.mark.spark

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
#: (user_id, event_date) of every event; "c*" users also have a profile, "e*" users only events
EVENTS = [("c2", D2), ("e9", D1), ("e5", D1), ("e5", D2), ("e1", D2), ("e7", D3)]
CATALOG = ["c1", "c2"]


def run(
    spark, index: dict[str, tuple[int, dt.date]], run_date: dt.date, bronze_upto: dt.date
) -> dict[str, tuple[int, dt.date]]:
    """A matrix run for ``run_date``, bronze holding events up to ``bronze_upto``; MERGEd like the job."""
    events = spark.createDataFrame(
        [(u, d) for u, d in EVENTS if d <= bronze_upto], f"{C.COL_USER} string, {C.COL_EVENT_DATE} date"
    )
    existing = (
        spark.createDataFrame(
            [(k, i, f) for k, (i, f) in index.items()],
            f"{C.COL_USER} string, {C.COL_USER_IDX} int, {C.COL_FIRST_SEEN} date",
        )
        if index
        else None
    )
    catalog = spark.createDataFrame([(c,) for c in CATALOG], f"{C.COL_USER} string")
    rows = extend_index(existing, events, catalog, C.COL_USER, C.COL_USER_IDX, run_date).collect()
    out = dict(index)
    for r in rows:
        if r[C.COL_USER] in out:
            assert r[C.COL_USER_IDX] == out[r[C.COL_USER]][0], "a known id never changes number"
            out[r[C.COL_USER]] = (r[C.COL_USER_IDX], min(r[C.COL_FIRST_SEEN], out[r[C.COL_USER]][1]))
        else:
            out[r[C.COL_USER]] = (r[C.COL_USER_IDX], r[C.COL_FIRST_SEEN])
    return out


# catalog ids first (by id), then ids known only from events by first event date, then id;
# first_seen: the earliest run date whose view (catalog, or an event up to that date) held the id
IN_ORDER = {
    "c1": (0, D1),
    "c2": (1, D1),
    "e5": (2, D1),
    "e9": (3, D1),
    "e1": (4, D2),
    "e7": (5, D3),
}


@pytest.mark.parametrize(
    "order",
    [(D1, D2, D3), (D3, D2, D1), (D1, D3, D2)],
    ids=lambda o: "-".join(str(d.day) for d in o),
)
def test_numbering_and_first_seen_do_not_depend_on_run_order(spark: Any, order) -> None:
    index: dict[str, tuple[int, dt.date]] = {}
    seen: list[dt.date] = []
    for day in order:
        seen.append(day)
        # bronze holds every event up to the latest date ingested so far
        index = run(spark, index, day, bronze_upto=max(seen))
    assert index == IN_ORDER


def test_a_date_run_after_a_later_one_with_a_gap_keeps_the_later_first_seen(spark: Any) -> None:
    # runs for D1 and D3 only: e1 (first event on D2) is first seen by the D3 run, in either order
    want = {**IN_ORDER, "e1": (4, D3)}
    in_order = run(spark, run(spark, {}, D1, bronze_upto=D1), D3, bronze_upto=D3)
    reverse = run(spark, run(spark, {}, D3, bronze_upto=D3), D1, bronze_upto=D3)
    assert in_order == reverse == want


def test_new_ids_are_appended_after_the_maximum(spark: Any) -> None:
    index = {"zz": (7, D1)}  # an existing, sparse numbering is kept as it is
    out = run(spark, index, D1, bronze_upto=D1)
    assert out["zz"] == (7, D1)
    assert {k: v[0] for k, v in out.items() if k != "zz"} == {"c1": 8, "c2": 9, "e5": 10, "e9": 11}


def test_an_earlier_run_date_sees_the_interactions_as_of_its_date(spark: Any, conf: dict) -> None:
    wh = conf.warehouse
    events = spark.createDataFrame(
        [
            ("e1", "u1", "i1", "play", dt.datetime(2026, 3, 1, 10), 60.0, D1),
            ("e2", "u1", "i1", "like", dt.datetime(2026, 3, 2, 10), None, D2),
            ("e3", "u2", "i1", "play", dt.datetime(2026, 3, 2, 11), 30.0, D2),
        ],
        f"{C.COL_EVENT_ID} string, {C.COL_USER} string, {C.COL_ITEM} string, {C.COL_EVENT_TYPE} string, "
        f"{C.COL_TS} timestamp, {C.COL_WATCH_SECONDS} double, {C.COL_EVENT_DATE} date",
    ).withColumn(C.COL_RATING, F.lit(None).cast("double"))
    tables.overwrite(events, wh, C.T_EVENTS)
    items = spark.createDataFrame([("i1", 600.0)], f"{C.COL_ITEM} string, {C.COL_DURATION} double")
    tables.overwrite(items, wh, C.T_ITEMS)
    idx = "{} string, {} int, {} date"
    tables.overwrite(
        spark.createDataFrame(
            [("u1", 0, D1), ("u2", 1, D2)], idx.format(C.COL_USER, C.COL_USER_IDX, C.COL_FIRST_SEEN)
        ),
        wh,
        C.T_USER_INDEX,
    )
    tables.overwrite(
        spark.createDataFrame([("i1", 0, D1)], idx.format(C.COL_ITEM, C.COL_ITEM_IDX, C.COL_FIRST_SEEN)),
        wh,
        C.T_ITEM_INDEX,
    )
    tables.overwrite(spark.createDataFrame([("stored",)], "marker string"), wh, C.T_INTERACTIONS)
    # the latest date reads the stored latest state; an earlier one folds bronze up to its date
    assert interactions_as_of(spark, conf, D2).columns == ["marker"]
    early = interactions_as_of(spark, conf, D1).collect()
    assert [(r.user_id, r.item_id, r.n_play, r.n_like, r.watch_ratio) for r in early] == [
        ("u1", "i1", 1, 0, 0.1)
    ]


# --- incremental build ----------------------------------------------------------------------------

INCR_END = dt.date(2026, 3, 8)


def _rows(df: Any) -> list[tuple[Any, ...]]:
    cols = sorted(df.columns)
    return sorted(
        tuple(round(v, 9) if isinstance(v, float) else v for v in (r[c] for c in cols)) for r in df.collect()
    )


def _late_events(raw: Any, user: str, item: str) -> None:
    """A second events file: a late play dated 2026-03-02 and a later re-rating of the same pair."""
    import json

    lines = [
        {"event_id": "late-1", "user_id": user, "item_id": item, "event_type": "play",
         "ts": "2026-03-02T08:00:00Z", "watch_seconds": 120.0},
        {"event_id": "late-2", "user_id": user, "item_id": item, "event_type": "rate",
         "ts": "2026-03-06T09:00:00Z", "rating": 1.5},
    ]  # fmt: skip
    (raw / "events_late.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


@pytest.mark.slow
@pytest.mark.extended
def test_incremental_builds_equal_a_full_refold(spark: Any, conf: Any, tmp_path: Any) -> None:
    """Night by night (with late events, an empty night and a rerun of an earlier date), the merged
    interactions equal a full refold of bronze, and the state says which nights merged."""
    from vidrec import pipeline
    from vidrec.data import matrix
    from vidrec.devdata import sample

    raw = tmp_path / "raw"
    sample.generate(spark, str(raw), n_users=40, n_items=25, days=8, end_date=INCR_END, seed=5)
    wh = conf.warehouse
    stages = ["ingest", "matrix"]
    days = [INCR_END - dt.timedelta(days=k) for k in (4, 3, 2, 1, 0)]
    modes = []
    for day in days[:3]:
        modes.append(pipeline.run_nightly(spark, conf, day, str(raw), stages)["matrix"])
    pair = tables.read(spark, wh, C.T_INTERACTIONS).orderBy(C.COL_USER, C.COL_ITEM).first()
    _late_events(raw, pair[C.COL_USER], pair[C.COL_ITEM])
    for day in days[3:]:
        modes.append(pipeline.run_nightly(spark, conf, day, str(raw), stages)["matrix"])
    modes.append(pipeline.run_nightly(spark, conf, days[-1], str(raw), stages)["matrix"])  # a rerun
    assert [m["mode"] for m in modes] == ["full"] + ["incremental"] * 5
    assert modes[-1]["events_folded"] == 0 and all(m["events_folded"] > 0 for m in modes[:-1])

    def full_refold() -> list[tuple[Any, ...]]:
        return _rows(
            matrix.build_interactions(
                tables.read(spark, wh, C.T_EVENTS),
                tables.read(spark, wh, C.T_ITEMS),
                tables.read(spark, wh, C.T_USER_INDEX),
                tables.read(spark, wh, C.T_ITEM_INDEX),
                conf.matrix.weights,
            )
        )

    merged = _rows(tables.read(spark, wh, C.T_INTERACTIONS))
    assert merged == full_refold()
    late = (
        tables.read(spark, wh, C.T_INTERACTIONS)
        .where((F.col(C.COL_USER) == pair[C.COL_USER]) & (F.col(C.COL_ITEM) == pair[C.COL_ITEM]))
        .first()
    )
    assert late[C.COL_RATING] == 1.5 and late[C.COUNT_COLS["play"]] >= 1  # the late rating is the latest one
    # an earlier date run after the later ones refolds everything, and still equals the refold
    assert pipeline.run_nightly(spark, conf, days[1], str(raw), stages)["matrix"]["mode"] == "full"
    assert _rows(tables.read(spark, wh, C.T_INTERACTIONS)) == full_refold() == merged


def test_merging_two_folds_equals_folding_all_events(spark: Any) -> None:
    from vidrec.data.matrix import fold_events, merge_folds

    t = dt.datetime(2026, 3, 1, 12)
    schema = (
        f"{C.COL_USER} string, {C.COL_ITEM} string, {C.COL_EVENT_TYPE} string, {C.COL_TS} timestamp, "
        f"{C.COL_WATCH_SECONDS} double, {C.COL_RATING} double"
    )
    old = [
        ("u1", "i1", "play", t, 100.0, None),
        ("u1", "i1", "rate", t + dt.timedelta(hours=2), None, 4.0),
        ("u2", "i1", "impression", t, None, None),
    ]
    new = [
        ("u1", "i1", "play", t - dt.timedelta(days=1), 300.0, None),  # a late, longer watch
        ("u1", "i1", "rate", t + dt.timedelta(hours=1), None, 2.0),  # late: an older rating, not the latest
        ("u2", "i1", "rate", t, None, 5.0),
        ("u3", "i2", "complete", t, 50.0, None),  # a new pair
    ]
    every = fold_events(spark.createDataFrame(old + new, schema))
    merged = merge_folds(
        fold_events(spark.createDataFrame(old, schema)), fold_events(spark.createDataFrame(new, schema))
    )
    assert _rows(merged.select(*every.columns)) == _rows(every)
    u1 = merged.where(f"{C.COL_USER} = 'u1'").first()
    assert (u1[C.COL_RATING], u1[C.COL_MAX_WATCH], u1[C.COUNT_COLS["play"]]) == (4.0, 300.0, 2)
