"""The served-list check: yesterday's lists against the engagement that arrived since."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from vidrec import constants as C
from vidrec.data import tables
from vidrec.data.schemas import RECOMMENDATIONS
from vidrec.evaluation.served import SPLIT_SERVED, new_engagement, served_list_check

pytestmark = pytest.mark.spark

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
T_BEFORE = dt.datetime(2026, 2, 27, 10)
T_AFTER = dt.datetime(2026, 3, 2, 9)


def _lists(spark: Any, wh: str) -> None:
    rows = [
        (D1, "u1", 1, "i1", 0.9, "als", "als-v1", "r"),
        (D1, "u1", 2, "i2", 0.8, "als", "als-v1", "r"),
        (D1, "u2", 1, "i3", 0.9, "als", "als-v1", "r"),
        (D1, "u1", 1, "i9", 0.5, "popularity", "pop-v1", "r"),
        (D1, "u2", 1, "i3", 0.5, "popularity", "pop-v1", "r"),
    ]
    tables.replace_partition(spark.createDataFrame(rows, RECOMMENDATIONS), wh, C.T_RECOMMENDATIONS, D1)


def _interactions(spark: Any) -> Any:
    def row(u: str, i: str, complete: int, first: dt.datetime) -> tuple[Any, ...]:
        counts = {c: 0 for c in C.COUNT_COLS.values()}
        counts[C.COUNT_COLS["complete"]] = complete
        counts[C.COUNT_COLS["play"]] = 1
        return (u, i, int(u[1:]), int(i[1:]), *counts.values(), None, first)

    cols = ", ".join(
        [
            f"{C.COL_USER} string, {C.COL_ITEM} string, {C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int",
            *[f"{c} long" for c in C.COUNT_COLS.values()],
            f"{C.COL_RATING} double, {C.COL_FIRST_TS} timestamp",
        ]
    )
    return spark.createDataFrame(
        [
            row("u1", "i2", 1, T_AFTER),  # new and completed: relevant, at rank 2 of als
            row("u1", "i1", 1, T_BEFORE),  # engaged before the lists were served: not relevant
            row("u2", "i4", 0, T_AFTER),  # played only: not relevant
            row("u3", "i3", 1, T_AFTER),  # relevant, but u3 got no list yesterday
        ],
        cols,
    )


def test_new_engagement_keeps_relevant_pairs_first_seen_after_the_lists(spark: Any) -> None:
    got = sorted(tuple(r) for r in new_engagement(_interactions(spark), D1).collect())
    assert got == [("u1", "i2"), ("u3", "i3")]


def test_served_lists_are_scored_per_algorithm(spark: Any, warehouse: str) -> None:
    _lists(spark, warehouse)
    check = served_list_check(spark, warehouse, _interactions(spark), D2, k=2)
    assert check.served_on == D1
    got = {(r[C.COL_ALGORITHM], r[C.COL_METRIC]): r[C.COL_VALUE] for r in check.rows}
    assert {r[C.COL_SPLIT] for r in check.rows} == {SPLIT_SERVED}
    assert {r[C.COL_MODEL_VERSION] for r in check.rows if r[C.COL_ALGORITHM] == "als"} == {"als-v1"}
    # u1 is the only user with new relevant engagement who was served: i2 at rank 2 of als's list
    assert got[("als", "users_evaluated")] == 1.0
    assert got[("als", "precision")] == pytest.approx(0.5)
    assert got[("als", "recall")] == pytest.approx(1.0)
    assert got[("als", "ndcg")] == pytest.approx((1 / math.log2(3)) / 1.0)
    assert got[("als", "hit_rate")] == pytest.approx(1.0)
    assert got[("popularity", "users_evaluated")] == 1.0 and got[("popularity", "ndcg")] == 0.0


def test_the_first_night_has_nothing_to_check(spark: Any, warehouse: str) -> None:
    check = served_list_check(spark, warehouse, _interactions(spark), D1, k=2)
    assert check.served_on is None and check.rows == [] and "first night" in check.note
