"""What tuning writes: the trials table ``ops/tuning_trials`` and the tuned configuration layer."""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import SparkSession
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from vidrec import constants as C
from vidrec.config import env_file_path, env_layer
from vidrec.data import tables
from vidrec.evaluation.search import params_key
from vidrec.models.deep.params import MODEL_NAMES as DEEP_MODELS

#: ``ops/tuning_trials``: one row per trial (hybrid: per blend tried).
TRIALS_TABLE: tables.Table = (C.OPS, "tuning_trials")
TRIALS_SCHEMA = StructType(
    [
        StructField(C.COL_RUN_DATE, DateType(), False),
        StructField("run_id", StringType(), False),
        StructField("protocol", StringType(), False),
        StructField(C.COL_ALGORITHM, StringType(), False),
        StructField("trial", IntegerType(), False),
        StructField("params", StringType(), False),
        StructField(C.COL_METRIC, StringType(), False),
        StructField(C.COL_VALUE, DoubleType(), False),
        StructField("chosen", BooleanType(), False),
        StructField("seconds", DoubleType(), False),
        StructField("metrics", StringType(), False),
        StructField("mlflow_run_id", StringType(), True),
        StructField("tuned_at", TimestampType(), False),
    ]
)


@dataclass
class Trial:
    """One configuration fitted on the validation split and scored."""

    algorithm: str
    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    seconds: float
    chosen: bool = False
    mlflow_run_id: str | None = None


@dataclass
class TuneResult:
    """What :func:`tune` tried and chose."""

    protocol: str
    validation: str
    metric: str
    trials: list[Trial]
    chosen: dict[str, dict[str, Any]]
    chosen_metrics: dict[str, dict[str, float]]
    layer: dict[str, Any]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    conf_path: str | None = None
    mlflow_run_id: str | None = None


def section_path(algorithm: str) -> tuple[str, ...]:
    """Where an algorithm's parameters live in the configuration (``deep.<model>`` for deep models)."""
    return ("deep", algorithm) if algorithm in DEEP_MODELS else (algorithm,)


def layer_for(chosen: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The configuration layer of the chosen values (``deep.<model>`` for deep models).

    The hybrid's chosen weights are written for every algorithm it blended (others keep theirs).
    """
    out: dict[str, Any] = {}
    for algo, params in chosen.items():
        if not params:
            continue
        node = out
        for part in section_path(algo):
            node = node.setdefault(part, {})
        for key, value in params.items():
            node[key] = copy.deepcopy(value)
    return out


def trial_rows(result: TuneResult, run_date: dt.date) -> list[tuple[Any, ...]]:
    """``ops/tuning_trials`` rows (:data:`TRIALS_SCHEMA`) of ``result``."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return [
        (
            run_date,
            result.run_id,
            result.protocol,
            t.algorithm,
            t.number,
            params_key(t.params),
            result.metric,
            float(t.metrics.get(result.metric.split("@")[0], 0.0)),
            bool(t.chosen),
            float(t.seconds),
            json.dumps({m: v for m, v in t.metrics.items() if math.isfinite(v)}, sort_keys=True),
            t.mlflow_run_id,
            now,
        )
        for t in result.trials
    ]


def write_trials(spark: SparkSession, warehouse: str, result: TuneResult, run_date: dt.date) -> int:
    """Replace the (``run_date``, protocol) rows of ``ops/tuning_trials`` with ``result``'s; returns rows."""
    rows = trial_rows(result, run_date)
    df = spark.createDataFrame(rows, TRIALS_SCHEMA)
    tables.replace_partition(
        df, warehouse, TRIALS_TABLE, run_date, extra_predicate=f"protocol = '{result.protocol}'"
    )
    return len(rows)


def deep_merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``layer``, mappings merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_tuned_conf(
    path: str | Path, env_file: str | Path | None, result: TuneResult, run_date: dt.date
) -> Path:
    """Write the environment file ``env_file`` plus the chosen values to ``path`` and check it loads.

    The file is a complete environment layer (use it as ``--conf``); a header says when and how the
    values were chosen and the validation NDCG of each algorithm.

    Raises
    ------
    vidrec.config.ConfigError
        When the written file does not load (the file is removed again).
    """
    from vidrec.config import load_config

    env = env_file_path(env_file)
    base = env_layer(env)  # with the files it extends: the tuned file stands alone
    merged = deep_merge(base, result.layer)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        f"# Tuned by jobs/tune.py (run {result.run_id}, run date {run_date.isoformat()}) over {env.name}.",
        f"# Protocol '{result.protocol}'; chosen by {result.metric} on a validation split carved from its",
        f"# training side ({result.validation}); the test side was not read.",
        "# Validation " + result.metric + ": "
        + ", ".join(f"{a} {m.get('ndcg', 0.0):.4f}" for a, m in result.chosen_metrics.items()) + ".",
        "# Regenerate with `make tune-ml100k`; every trial is in ops/tuning_trials and in MLflow.",
    ]  # fmt: skip
    body = yaml.safe_dump(merged, sort_keys=False, default_flow_style=None, width=110)
    out.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    try:
        load_config(out)
    except Exception:
        out.unlink()
        raise
    return out
