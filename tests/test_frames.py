"""Shared DataFrame transforms (vidrec.data.frames)."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from vidrec.data.frames import number_in_one_task

pytestmark = [pytest.mark.spark]


def test_rows_are_numbered_in_order_with_every_column_kept(spark) -> None:
    df = spark.createDataFrame(
        [("b", 2.0, 7), ("a", 2.0, 8), ("c", 5.0, 9)], "item string, score double, n int"
    )
    out = number_in_one_task(df, [-F.col("score"), F.col("item")], "rank")
    assert out.columns == ["item", "score", "n", "rank"]
    assert [tuple(r) for r in out.orderBy("rank").collect()] == [
        ("c", 5.0, 9, 1),
        ("a", 2.0, 8, 2),
        ("b", 2.0, 7, 3),
    ]


def test_start_and_an_empty_frame(spark) -> None:
    df = spark.createDataFrame([(3,), (1,)], "x int")
    assert [tuple(r) for r in number_in_one_task(df, [F.col("x")], "_pos", start=0).collect()] == [
        (1, 0),
        (3, 1),
    ]
    assert number_in_one_task(df.where("x > 9"), [F.col("x")], "_pos").count() == 0


def test_an_order_is_required(spark) -> None:
    with pytest.raises(ValueError, match="order"):
        number_in_one_task(spark.range(2), [], "_pos")
