"""Per-user split protocols: which events go to test, per-user shares, determinism, edge users."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vidrec.constants import COL_EVENT_ID, COL_ITEM, COL_TS, COL_USER
from vidrec.evaluation.splits import per_user_chrono_split, per_user_random_split, time_cutoff_split

SCHEMA = f"{COL_EVENT_ID} string, {COL_USER} string, {COL_ITEM} string, {COL_TS} timestamp"
T0 = dt.datetime(2026, 3, 1)


def _t(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


#: (event_id, user, item, minute). a: tie on time at the end, broken by item; b: one event;
#: c: tie on time and item across the boundary, broken by event id; d: three events.
EVENTS = [
    ("a1", "a", "i3", 1), ("a2", "a", "i1", 2), ("a3", "a", "i5", 3), ("a4", "a", "i2", 5),
    ("a5", "a", "i1", 5),
    ("b1", "b", "i1", 1),
    ("c1", "c", "i1", 1), ("c2", "c", "i2", 2), ("c3", "c", "i3", 3), ("c4", "c", "i4", 4),
    ("c5", "c", "i5", 5), ("c6b", "c", "i6", 6), ("c6a", "c", "i6", 6), ("c8", "c", "i8", 8),
    ("d1", "d", "i1", 1), ("d2", "d", "i2", 2), ("d3", "d", "i3", 3),
]  # fmt: skip


@pytest.fixture(scope="module")
def events(spark: Any) -> DataFrame:
    return spark.createDataFrame([(e, u, i, _t(m)) for e, u, i, m in EVENTS], SCHEMA)


@pytest.fixture(scope="module")
def ladder(spark: Any) -> DataFrame:
    """User ``uK`` has K events, K = 1..12 (78 events)."""
    pairs = [(k, j) for k in range(1, 13) for j in range(k)]
    return spark.createDataFrame([(f"e{k}-{j}", f"u{k}", f"i{j}", _t(j)) for k, j in pairs], SCHEMA)


def _ids(df: DataFrame) -> list[str]:
    return sorted(r[0] for r in df.select(COL_EVENT_ID).collect())


@pytest.mark.spark
def test_chrono_split_holds_out_each_users_latest(events: DataFrame) -> None:
    train, test = per_user_chrono_split(events, test_fraction=0.2)
    assert train.columns == events.columns and test.columns == events.columns
    # a: 5 events, 1 out; a4 and a5 tie at minute 5, a4's item i2 sorts after a5's i1
    # b: a single event stays in train; c: 8 events, 2 out, c6a before c6b; d: 3 events, 1 out
    assert _ids(test) == ["a4", "c6b", "c8", "d3"]
    assert _ids(train) == sorted({e for e, *_ in EVENTS} - {"a4", "c6b", "c8", "d3"})


@pytest.mark.spark
def test_random_split_is_a_partition_with_per_user_shares(ladder: DataFrame) -> None:
    train, test = per_user_random_split(ladder, ratio=0.75, seed=42)
    train_ids, test_ids = _ids(train), _ids(test)
    assert not set(train_ids) & set(test_ids)
    assert sorted(train_ids + test_ids) == _ids(ladder)
    per_user = {r[0]: r[1] for r in train.groupBy(COL_USER).count().collect()}
    # round(0.75 K) half up, at least one: u1 (a single event) and u2 (1.5 -> 2) are train only
    assert per_user == {f"u{k}": n for k, n in enumerate([1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 8, 9], start=1)}
    assert {u for u in per_user if per_user[u] < int(u[1:])} == {f"u{k}" for k in range(3, 13)}


@pytest.mark.spark
def test_random_split_does_not_depend_on_partitioning(ladder: DataFrame) -> None:
    _, test = per_user_random_split(ladder, seed=42)
    shuffled = ladder.orderBy(F.col(COL_EVENT_ID).desc()).repartition(3)
    _, test_shuffled = per_user_random_split(shuffled, seed=42)
    _, test_other_seed = per_user_random_split(ladder, seed=7)
    assert _ids(test) == _ids(test_shuffled)
    assert _ids(test) != _ids(test_other_seed)


@pytest.mark.spark
def test_random_split_pins_seed_42(events: DataFrame) -> None:
    # A regression pin: the hash (xxhash64 of seed and event id) decides, not the row order.
    _, test = per_user_random_split(events, ratio=0.75, seed=42)
    assert [r[COL_USER] for r in test.orderBy(COL_USER).collect()] == ["a", "c", "c", "d"]
    assert "b1" not in _ids(test)


@pytest.mark.spark
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ev: per_user_chrono_split(ev, test_fraction=0.0), r"test_fraction must be in \(0, 1\)"),
        (lambda ev: per_user_chrono_split(ev, test_fraction=1.0), "test_fraction must be in"),
        (lambda ev: per_user_random_split(ev, ratio=1.5), r"ratio must be in \(0, 1\), got 1.5"),
        (lambda ev: per_user_random_split(ev.drop(COL_EVENT_ID)), "events lack column.*event_id"),
        (lambda ev: per_user_chrono_split(ev.drop(COL_TS)), "events lack column.*ts"),
    ],
)
def test_arguments_are_checked_before_any_spark_job(events: DataFrame, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(events)


@pytest.mark.spark
def test_time_cutoff_split_is_disjoint_and_keeps_test_users_seen_in_training(spark: Any) -> None:
    # u1 active minutes 0..9, u2 only after the cut-off (dropped from test), u3 on both sides
    rows = [(f"a{m}", "u1", f"i{m}", _t(m)) for m in range(10)]
    rows += [("b1", "u2", "i1", _t(8)), ("c1", "u3", "i2", _t(1)), ("c2", "u3", "i3", _t(9))]
    ev = spark.createDataFrame(rows, SCHEMA)
    cutoff = _t(8)
    train, test, got_cutoff = time_cutoff_split(ev, cutoff=cutoff)
    assert got_cutoff == cutoff
    assert _ids(train) == [f"a{m}" for m in range(8)] + ["c1"]
    assert _ids(test) == ["a8", "a9", "c2"]  # b1 is after the cut-off but u2 has no training event
    assert not set(_ids(train)) & set(_ids(test))
    # the default cut-off is the 1 - test_fraction quantile of event time
    _, _, quantile = time_cutoff_split(ev, test_fraction=0.25)
    assert _t(7) <= quantile <= _t(9)


@pytest.mark.spark
def test_chrono_split_per_user_shares_and_determinism(ladder: DataFrame) -> None:
    train, test = per_user_chrono_split(ladder, test_fraction=0.25)
    assert not set(_ids(train)) & set(_ids(test))
    assert sorted(_ids(train) + _ids(test)) == _ids(ladder)
    per_user = {r[0]: r[1] for r in train.groupBy(COL_USER).count().collect()}
    assert per_user == {f"u{k}": n for k, n in enumerate([1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 8, 9], start=1)}
    # the latest events are the held-out ones: u4 keeps i0..i2, holds out i3
    assert [r[COL_ITEM] for r in test.where(F.col(COL_USER) == "u4").collect()] == ["i3"]
    shuffled = ladder.orderBy(F.col(COL_EVENT_ID).desc()).repartition(3)
    assert _ids(per_user_chrono_split(shuffled, test_fraction=0.25)[1]) == _ids(test)
