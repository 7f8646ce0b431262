"""The run log (``ops/runs``), rows written from Delta's commit metrics, and the roll-back."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vidrec import analytics
from vidrec import constants as C
from vidrec.data import tables
from vidrec.pipeline.context import RunContext

log = logging.getLogger(__name__)

#: Tables a run may write, in the order they are restored on failure.
RUN_TABLES = (
    C.T_QUARANTINE,
    C.T_EVENTS,
    C.T_ITEMS,
    C.T_USERS,
    C.T_USER_INDEX,
    C.T_ITEM_INDEX,
    C.T_INTERACTIONS,
    C.T_MODEL_METRICS,
    C.T_RECOMMENDATIONS,
    C.T_POPULAR_ITEMS,
    C.T_SIMILAR_ITEMS,
    C.T_USER_EMBEDDINGS,
    *analytics.ANALYTICS_TABLES.values(),
)


# --- run log and roll-back --------------------------------------------------------------------

RUNS_SCHEMA = (
    "run_id string, run_date date, stage string, status string, started_at timestamp, "
    "ended_at timestamp, seconds double, details string, error string, "
    "rows_written map<string, bigint>, bad_records bigint, model_versions map<string, string>"
)

#: Stages whose tables carry a ``model_version`` column, read back for the run log.
_VERSIONED = {"evaluate": C.T_MODEL_METRICS, "recommend": C.T_RECOMMENDATIONS}

#: Delta operation metrics of a MERGE that count the rows it changed (its numOutputRows counts copies too).
_MERGE_METRICS = ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")


def commit_rows(metrics: Mapping[str, str] | None) -> int:
    """Rows one Delta commit wrote: inserted + updated + deleted for a MERGE, else ``numOutputRows``."""
    m = metrics or {}
    if any(k in m for k in _MERGE_METRICS):
        return sum(int(m.get(k) or 0) for k in _MERGE_METRICS)
    if "numUpdatedRows" in m:
        return int(m["numUpdatedRows"])
    if "numOutputRows" in m:
        return int(m["numOutputRows"])
    return int(m.get("numDeletedRows") or 0)


def _log_run(
    rc: RunContext,
    stage: str,
    status: str,
    started: dt.datetime,
    details: Any,
    error: str | None,
    rows_written: Mapping[str, int] | None = None,
    bad_records: int | None = None,
    model_versions: Mapping[str, str] | None = None,
) -> None:
    """Append one row to ``ops/runs`` (adding the newer columns to an older table's schema)."""
    ended = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = [
        (
            rc.run_id,
            rc.run_date,
            stage,
            status,
            started,
            ended,
            (ended - started).total_seconds(),
            json.dumps(details, default=str),
            error,
            dict(rows_written or {}),
            bad_records,
            dict(model_versions or {}),
        )
    ]
    tables.append(rc.spark.createDataFrame(row, RUNS_SCHEMA), rc.warehouse, C.T_RUNS, merge_schema=True)


def table_versions(
    spark: SparkSession, warehouse: str, names: Sequence[tables.Table]
) -> dict[tables.Table, int | None]:
    """Current Delta version of each table (``None`` when it does not exist yet)."""
    return {t: tables.latest_version(spark, warehouse, t) for t in names}


def rows_written(
    spark: SparkSession,
    warehouse: str,
    before: Mapping[tables.Table, int | None],
    after: Mapping[tables.Table, int | None],
) -> dict[str, int]:
    """Rows each changed table took between two version maps, from Delta's commit metrics.

    Each commit counts as :func:`commit_rows` of its ``operationMetrics``.
    """
    out: dict[str, int] = {}
    for t, v in after.items():
        if v is None or v == before.get(t):
            continue
        first = 0 if before.get(t) is None else cast(int, before[t]) + 1
        infos = tables.commit_infos(spark, warehouse, t, range(first, v + 1))
        out[tables.catalog_name(t)] = sum(commit_rows(i.get("operationMetrics")) for i in infos)
    return out


def model_versions(spark: SparkSession, warehouse: str, stage: str, run_date: dt.date) -> dict[str, str]:
    """The model versions ``stage`` (evaluate, recommend) wrote for ``run_date``, by model name.

    A version reads ``<name>-<run_date>-<hash of its parameters>``; the name is the algorithm, or
    e.g. ``als-biased`` for the rating model evaluate fits beside the ranking one.
    """
    table = _VERSIONED.get(stage)
    if table is None or not tables.exists(spark, warehouse, table):
        return {}
    rows = (
        tables.read(spark, warehouse, table)
        .where(F.col(C.COL_RUN_DATE) == F.lit(run_date))
        .select(C.COL_ALGORITHM, C.COL_MODEL_VERSION)
        .distinct()
        .collect()
    )
    sep = f"-{run_date.isoformat()}-"
    return {(v.split(sep)[0] if sep in v else a): v for a, v in sorted(rows)}


def rollback(
    spark: SparkSession,
    warehouse: str,
    before: Mapping[tables.Table, int | None],
    keep: Sequence[tables.Table] = (),
) -> list[str]:
    """Restore every table that changed since ``before`` to its version then; returns what was restored.

    A table created by the failed run is emptied at a new version (Delta keeps its history). Tables in
    ``keep`` are left as the run wrote them (the quarantine of a run refused for bad input).
    """
    restored = []
    now = table_versions(spark, warehouse, list(before))
    for t, v in before.items():
        if t in keep or now[t] is None or now[t] == v:
            continue
        dt_ = DeltaTable.forPath(spark, tables.table_path(warehouse, t))
        if v is None:
            dt_.delete()
        else:
            dt_.restoreToVersion(v)
        restored.append(tables.catalog_name(t))
    return restored
