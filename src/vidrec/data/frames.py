"""DataFrame transforms shared across layers that belong to no one table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def number_in_one_task(df: DataFrame, order: Sequence[Column], name: str, start: int = 1) -> DataFrame:
    """``df`` (all its columns) plus ``name``: each row's position ``start, start + 1, ...`` by ``order``.

    For a frame that is one group and small (a catalogue, a top-n list): the rows are collected into
    one task and numbered as one sorted array. A window without a partition key does the same, but
    Spark's optimizer drops a constant key and logs "No Partition Defined for Window operation" for
    each such window.

    Parameters
    ----------
    df : DataFrame
        The rows to number.
    order : sequence of Column
        Sort keys, ascending, nulls first (negate a numeric key for descending order); the last should
        make the order total, or ties get an arbitrary but distinct position.
    name : str
        The position column (``long``).
    start : int
        The first row's position.
    """
    if not order:
        raise ValueError("number_in_one_task: give at least one order column")
    key = F.struct(*[c.alias(f"_k{i}") for i, c in enumerate(order)])
    rows = F.struct(*[F.col(f"`{c}`") for c in df.columns])
    listed = df.agg(
        F.sort_array(F.collect_list(F.struct(key.alias("_key"), rows.alias("_row")))).alias("_all")
    )
    return listed.select(F.posexplode("_all").alias("_pos", "_e")).select(
        "_e._row.*", (F.col("_pos") + F.lit(int(start))).cast("long").alias(name)
    )


def materialise(df: DataFrame) -> DataFrame:
    """``df`` computed now and cut from its lineage (``localCheckpoint``).

    The blend stacks joins over every generator's plan; without the cut, the plans of later steps
    (explanations, metrics) grow with every reference to earlier ones and their planning and
    string rendering can exhaust the driver. Local checkpoints live in the executors' block
    managers, like a cache: a lost executor fails the job rather than recomputing.
    """
    return df.localCheckpoint(eager=True)


def snapshot(df: DataFrame) -> DataFrame:
    """``df`` computed once (:func:`materialise`) unless it already holds its blocks (a checkpoint
    or a cached frame, :func:`holds_blocks`): for inputs that many later steps read (the catalog
    and the profiles of a fit context)."""
    return df if holds_blocks(df) else materialise(df)


def release(df: DataFrame) -> None:
    """Free the blocks of a frame from :func:`materialise` now (``DataFrame.unpersist`` leaves a local
    checkpoint's blocks until the driver's garbage collector drops its RDD); a cached frame is
    unpersisted."""
    rdd = _checkpoint_rdd(df)
    if rdd is not None:
        rdd.unpersist(False)
    else:
        df.unpersist()


def holds_blocks(df: DataFrame) -> bool:
    """Whether ``df`` keeps computed blocks that :func:`release` would free: it is cached, or it is
    a :func:`materialise` checkpoint (a frame over an RDD that is persisted)."""
    if df.is_cached:
        return True
    rdd = _checkpoint_rdd(df)
    return rdd is not None and bool(rdd.getStorageLevel().isValid())


def _checkpoint_rdd(df: DataFrame) -> Any:
    """The JVM RDD under ``df`` when its plan is an RDD scan (what :func:`materialise` returns), else None."""
    plan = df._jdf.queryExecution().logical()
    return plan.rdd() if plan.getClass().getSimpleName() == "LogicalRDD" else None
