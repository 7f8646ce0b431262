"""Shared DataFrame transforms (vidrec.data.frames)."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from vidrec.data.frames import holds_blocks, materialise, number_in_one_task, release, snapshot
from vidrec.models.base import Candidates

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


def test_checkpoints_and_caches_are_told_apart_and_released(spark) -> None:
    df = spark.createDataFrame([(i, float(i)) for i in range(20)], "item_idx int, score double")
    checkpoint = materialise(df.where("item_idx < 10"))
    cached = df.where("item_idx >= 10").cache()
    cached.count()
    plain = df.select("item_idx")
    assert holds_blocks(checkpoint) and holds_blocks(cached) and not holds_blocks(plain)
    assert checkpoint.count() == 10
    release(checkpoint)
    assert not holds_blocks(checkpoint)
    cand = Candidates(plain, "v", {"vectors": cached, "ids": plain})
    cand.release_artifacts()  # frees what holds blocks, leaves the rest as it was
    assert not holds_blocks(cached) and cached.count() == 10 and plain.count() == 20


def test_snapshot_computes_a_frame_once_and_keeps_one_that_already_is(spark) -> None:
    df = spark.createDataFrame([(i, f"t{i}") for i in range(5)], "item_idx int, title string")
    plain = df.where("item_idx > 1")
    once = snapshot(plain)
    assert once is not plain and holds_blocks(once) and sorted(once.toPandas()["item_idx"]) == [2, 3, 4]
    assert snapshot(once) is once  # a second reader does not compute it again
    cached = df.cache()
    cached.count()
    assert snapshot(cached) is cached
    cached.unpersist()
    release(once)
