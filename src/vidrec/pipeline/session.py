"""The one place a SparkSession is built: Delta extension and catalog, Arrow, local defaults.

``configure_builder`` composes like ``delta.configure_spark_with_delta_pip``: it takes a builder and
returns it, so tests and jobs add their own settings around it. Delta's jars come from the folder
``make setup`` fills from Maven Central (``spark.jars_dir``), so no session touches the network.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from vidrec.config import Config, ConfigError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DELTA_JAR_PREFIXES = ("delta-spark_", "delta-storage-")


def delta_jars(jars_dir: str | Path) -> list[str]:
    """Return the Delta jar files in ``jars_dir`` (relative paths are from the project root).

    Raises
    ------
    ConfigError
        When the folder or one of the two jars is missing (run ``make setup``).
    """
    folder = Path(jars_dir)
    if not folder.is_absolute():
        folder = PROJECT_ROOT / folder
    jars = sorted(str(p) for p in folder.glob("*.jar")) if folder.is_dir() else []
    for prefix in DELTA_JAR_PREFIXES:
        if not any(Path(j).name.startswith(prefix) for j in jars):
            raise ConfigError(
                f"spark.jars_dir: no {prefix}*.jar in {folder}; run `make setup` to resolve Delta's jars "
                "from Maven Central, or set spark.jars_dir to '' when the cluster provides them"
            )
    return jars


def under_spark_submit() -> bool:
    """True when launched by ``spark-submit`` (which sets ``spark.master`` before Python starts)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def configure_builder(builder: SparkSession.Builder, conf: Config) -> SparkSession.Builder:
    """Apply vidrec's Spark settings from ``conf.spark`` to ``builder`` and return it."""
    sc = conf.spark
    builder = (
        builder.appName(sc.app_name)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(sc.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        .config("spark.sql.sources.partitionOverwriteMode", "static")
    )
    if not under_spark_submit():
        # Python workers of an embedded session run this interpreter (the project's venv).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            builder.master(sc.master or "local[*]")
            .config("spark.driver.memory", sc.driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.warehouse.dir", str(Path(conf.warehouse) / "_spark_catalog"))
        )
    if sc.jars_dir:
        builder = builder.config("spark.jars", ",".join(delta_jars(sc.jars_dir)))
    for key, value in sc.extra.items():
        builder = builder.config(key, value)
    return builder


def build_spark(conf: Config) -> SparkSession:
    """Build (or get) the SparkSession for ``conf`` and set its checkpoint folder."""
    spark = configure_builder(SparkSession.builder, conf).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    checkpoint = conf.spark.checkpoint_dir or f"{conf.warehouse}/_checkpoints"
    try:
        spark.sparkContext.setCheckpointDir(checkpoint)
    except Exception as exc:  # the folder's file system is the first thing a session touches
        from vidrec.pipeline.preflight import java_error

        if conf.spark.checkpoint_dir:
            raise ConfigError(f"'spark.checkpoint_dir': cannot use {checkpoint}: {java_error(exc)}") from exc
        raise ConfigError(
            f"'warehouse': cannot reach {conf.warehouse} (for its _checkpoints folder): {java_error(exc)}"
        ) from exc
    log.info("spark %s master=%s warehouse=%s", spark.version, spark.sparkContext.master, conf.warehouse)
    return spark
