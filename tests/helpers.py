"""Helpers shared by the tests: a FitContext factory and the output contracts as assertions.

The contracts themselves are the library's (:mod:`vidrec.data.contracts`): the tests check generator
lists and gold tables with the same code the pipeline runs before every gold write.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from vidrec import constants as C
from vidrec.config import Config
from vidrec.data import contracts
from vidrec.models.base import FitContext

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-03-31"
RECS_SCHEMA = f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int, {C.COL_SCORE} double, {C.COL_RANK} int"
PAIRS_SCHEMA = f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int"


def fit_context(
    spark: SparkSession,
    conf: Config,
    interactions: DataFrame,
    *,
    work_dir: str,
    events: DataFrame | None = None,
    items: DataFrame | None = None,
    users: DataFrame | None = None,
    targets: DataFrame | None = None,
    seen: DataFrame | None = None,
    n: int = 3,
    run_date: str = RUN_DATE,
    **flags: Any,
) -> FitContext:
    """A :class:`FitContext` from hand-made frames (a unit test's, not the pipeline's builder).

    Defaults: ``events`` and ``items`` are ``interactions``; ``targets`` every user of
    ``interactions``; ``users`` the targets; ``seen`` the pairs with ``confidence > 0``. ``flags`` are
    ``use_gpu``, ``save_model``, ``explain``.
    """
    if targets is None:
        targets = interactions.select(C.COL_USER_IDX).distinct()
    if seen is None:
        seen = interactions.where(f"{C.COL_CONFIDENCE} > 0").select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    return FitContext(
        spark=spark,
        conf=conf,
        interactions=interactions,
        events=events if events is not None else interactions,
        items=items if items is not None else interactions,
        users=users if users is not None else targets,
        target_users=targets,
        seen=seen,
        n=n,
        work_dir=work_dir,
        run_date=run_date,
        **flags,
    )


def as_frame(spark: SparkSession, rows: DataFrame | Iterable[tuple[Any, ...]], schema: str) -> DataFrame:
    """``rows`` as a DataFrame (already one: returned as is)."""
    return rows if isinstance(rows, DataFrame) else spark.createDataFrame(list(rows), schema)


def assert_candidates(
    spark: SparkSession,
    recs: DataFrame | Iterable[tuple[int, int, float, int]],
    seen: DataFrame | Iterable[tuple[int, int]] | None = None,
    n: int | None = None,
) -> None:
    """The candidate-list contract (:func:`vidrec.data.contracts.check_candidates`) as an assertion."""
    recs_df = as_frame(spark, recs, RECS_SCHEMA)
    seen_df = as_frame(spark, seen, PAIRS_SCHEMA) if seen is not None else None
    contracts.check_candidates(recs_df, seen_df, n)


def assert_gold_recommendations(gold: DataFrame, seen: DataFrame | None = None, n: int | None = None) -> None:
    """``gold/recommendations`` rows keep their contract (:mod:`vidrec.data.contracts`)."""
    contracts.check_recommendations(gold, seen, n)


def dag_module() -> ModuleType:
    """``pipelines/airflow_dag.py`` imported by path (``pipelines`` is not a package), once per process."""
    name = "vidrec_pipelines_airflow_dag"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "pipelines" / "airflow_dag.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def scannable_bytes(path: str | Path) -> bytes:
    """The bytes of a file in which an id would appear as written: all of them, but for a Parquet data
    file only its footer (schema, column min/max statistics; thrift, uncompressed). Its pages are
    compressed (snappy), where a back-reference can splice a shorter id out of a longer one; check
    their decoded rows instead."""
    data = Path(path).read_bytes()
    name = Path(path).name
    if not (name.endswith(".parquet") and not name.startswith(".")):
        return data
    assert data[-4:] == b"PAR1", f"{path}: not a Parquet file"
    size = int.from_bytes(data[-8:-4], "little")
    return data[-8 - size : -8]
