"""What one run's stages share, and the fit context of a nightly (everything up to the run date)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from vidrec import constants as C
from vidrec.config import Config
from vidrec.data import matrix
from vidrec.evaluation.context import build_context
from vidrec.models.base import FitContext


@dataclass
class RunContext:
    """State shared by the stages of one run."""

    spark: SparkSession
    conf: Config
    run_date: dt.date
    raw_dir: str | None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    use_gpu: bool = False
    #: Fold every event in bronze again instead of the ones ingested since the last build.
    full_refresh: bool = False

    @property
    def warehouse(self) -> str:
        return self.conf.warehouse


def build_fit_context(
    spark: SparkSession, conf: Config, run_date: dt.date, use_gpu: bool = False
) -> FitContext:
    """The nightly's :class:`FitContext`: everything known up to ``run_date`` (not a split).

    Target users are every user indexed by ``run_date`` (``first_seen <= run_date``); seen pairs follow
    ``recommend.exclude_played``. A run for an earlier date than the latest state (out of order, or a
    backfill) gets the interactions and ids as they were at ``run_date``. Built by the one builder,
    :func:`vidrec.evaluation.context.build_context`.
    """
    wh = conf.warehouse
    return build_context(
        spark,
        conf,
        *matrix.warehouse_inputs(spark, wh, run_date, ids_as_of=True),
        run_date=run_date.isoformat(),
        work_dir=f"{wh}/{C.MODELS}/{run_date.isoformat()}",
        n=conf.recommend.top_n,
        interactions=matrix.interactions_as_of(spark, conf, run_date),
        use_gpu=use_gpu,
        save_model=True,
    )
