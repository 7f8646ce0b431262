"""The served-list check: yesterday's lists scored against the engagement that arrived since.

What a product team watches every day, at the cost of a join: every algorithm's rows of
``gold/recommendations`` of the previous run date are scored (precision, recall, nDCG, hit rate at
``evaluation.k``, and the users evaluated) against the relevant engagement that arrived after that
date, up to and including this run date: the (user, item) pairs whose first event is after the
previous run date and that the user completed, liked, favorited or rated >= 4 (the relevance rule of
the offline evaluation; a pair engaged with before the lists were served could not be a hit, since
served lists exclude what a user has already seen). The rows go to ``gold/model_metrics`` with
``split = served_next_day`` and the model version of yesterday's lists.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.data import schemas, tables
from vidrec.evaluation import metrics
from vidrec.evaluation.context import relevant_pairs

log = logging.getLogger(__name__)

SPLIT_SERVED = "served_next_day"
#: The metrics the check writes (besides ``users_evaluated``).
SERVED_METRICS = ("precision", "recall", "ndcg", "hit_rate")


@dataclass
class ServedCheck:
    """What the check found: the lists' run date, and metric rows (empty when there was nothing to score)."""

    served_on: dt.date | None
    rows: list[Row] = field(default_factory=list)
    note: str = ""


def previous_run_date(spark: SparkSession, warehouse: str, run_date: dt.date) -> dt.date | None:
    """The latest run date before ``run_date`` with served lists in ``gold/recommendations``."""
    if not tables.exists(spark, warehouse, C.T_RECOMMENDATIONS):
        return None
    row = (
        tables.read(spark, warehouse, C.T_RECOMMENDATIONS)
        .where(F.col(C.COL_RUN_DATE) < F.lit(run_date))
        .agg(F.max(C.COL_RUN_DATE))
        .first()
    )
    return row[0] if row is not None else None


def new_engagement(interactions: DataFrame, since: dt.date) -> DataFrame:
    """``(user_id, item_id)`` of relevant pairs whose first event is after the day ``since``."""
    after = F.lit(dt.datetime.combine(since + dt.timedelta(days=1), dt.time()))
    fresh = interactions.where(F.col(C.COL_FIRST_TS) >= after)
    return (
        relevant_pairs(fresh)
        .join(
            fresh.select(C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_USER, C.COL_ITEM),
            [C.COL_USER_IDX, C.COL_ITEM_IDX],
        )
        .select(C.COL_USER, C.COL_ITEM)
    )


def served_metrics(lists: DataFrame, engaged: DataFrame, k: int) -> list[Row]:
    """Per algorithm of ``lists`` (``gold/recommendations`` rows): metrics at ``k`` over ``engaged`` users.

    One Spark job. Returns ``(algorithm, model_version, precision, recall, ndcg, hit_rate, users)`` rows.
    """
    versions = lists.groupBy(C.COL_ALGORITHM).agg(F.max(C.COL_MODEL_VERSION).alias(C.COL_MODEL_VERSION))
    served_users = lists.select(C.COL_ALGORITHM, C.COL_USER).distinct()
    # users evaluated: those who engaged and were served by the algorithm yesterday
    relevant = engaged.join(served_users, C.COL_USER).select(C.COL_ALGORITHM, C.COL_USER, C.COL_ITEM)
    table = metrics.ranking_metrics_table(
        lists.select(C.COL_ALGORITHM, C.COL_USER, C.COL_ITEM, C.COL_RANK),
        relevant.withColumnRenamed(C.COL_ALGORITHM, "_served_by"),
        k,
        [C.COL_ALGORITHM],
        ["_served_by"],
        user=C.COL_USER,
        item=C.COL_ITEM,
    ).where(F.col(C.COL_ALGORITHM) == F.col("_served_by"))
    return table.join(versions, C.COL_ALGORITHM).collect()


def served_list_check(
    spark: SparkSession, warehouse: str, interactions: DataFrame, run_date: dt.date, k: int
) -> ServedCheck:
    """Score the previous run date's served lists against the engagement since (see the module docstring).

    ``interactions`` is ``silver/interactions`` as of ``run_date``. Returns ``gold/model_metrics``
    rows for ``run_date`` (split :data:`SPLIT_SERVED`), none on a warehouse's first night.
    """
    served_on = previous_run_date(spark, warehouse, run_date)
    if served_on is None:
        return ServedCheck(None, [], "no earlier served lists: nothing to check on a warehouse's first night")
    lists = tables.read(spark, warehouse, C.T_RECOMMENDATIONS).where(
        F.col(C.COL_RUN_DATE) == F.lit(served_on)
    )
    found = served_metrics(lists, new_engagement(interactions, served_on), k)
    rows: list[Row] = []
    for r in found:
        values = {m: float(r[m] or 0.0) for m in SERVED_METRICS}
        for name, value in values.items():
            rows.append(_row(run_date, r, name, k, value))
        rows.append(_row(run_date, r, "users_evaluated", None, float(r["users"])))
    if found:
        users = max(int(r["users"]) for r in found)
        note = (
            f"lists of {served_on} scored for {len(found)} algorithm(s), {users} user(s) with new engagement"
        )
    else:
        note = f"nobody engaged with a new title since {served_on}: nothing to score"
    return ServedCheck(served_on, rows, note)


def _row(run_date: dt.date, r: Row, metric: str, k: int | None, value: float) -> Row:
    return Row(
        **{
            C.COL_RUN_DATE: run_date,
            C.COL_ALGORITHM: r[C.COL_ALGORITHM],
            C.COL_MODEL_VERSION: r[C.COL_MODEL_VERSION],
            C.COL_METRIC: metric,
            C.COL_K: k,
            C.COL_VALUE: value,
            C.COL_SPLIT: SPLIT_SERVED,
        }
    )


def to_frame(spark: SparkSession, rows: list[Row]) -> DataFrame:
    """``rows`` as a ``gold/model_metrics`` DataFrame."""
    return spark.createDataFrame(
        [tuple(r[f] for f in schemas.MODEL_METRICS.fieldNames()) for r in rows], schemas.MODEL_METRICS
    )
