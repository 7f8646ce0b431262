"""Delta warehouse I/O: where each table lives, and the few ways the pipeline writes them.

Every write is one Delta commit, so a reader sees the previous complete version or the new one:
- ``replace_partition``: overwrite one ``run_date`` (``replaceWhere``), idempotent per run date;
- ``overwrite``: replace a whole table (silver snapshots);
- ``merge_upsert``: MERGE on key columns (catalog and profile upserts, only the rows that changed);
- ``append``: add rows (bronze's new events, run logs).
Tables are registered in the Spark catalog as ``vidrec_<layer>.<table>``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec.constants import COL_RUN_DATE

log = logging.getLogger(__name__)

Table = tuple[str, str]


def table_path(warehouse: str, table: Table) -> str:
    """Path of ``table`` = (layer, name) under ``warehouse``."""
    layer, name = table
    return f"{str(warehouse).rstrip('/')}/{layer}/{name}"


def catalog_name(table: Table) -> str:
    """Spark catalog name of ``table``: ``vidrec_<layer>.<name>``."""
    return f"vidrec_{table[0]}.{table[1]}"


def exists(spark: SparkSession, warehouse: str, table: Table) -> bool:
    """True when ``table`` is a Delta table in ``warehouse``."""
    return DeltaTable.isDeltaTable(spark, table_path(warehouse, table))


def latest_version(spark: SparkSession, warehouse: str, table: Table) -> int | None:
    """The latest committed Delta version of ``table`` (``None`` when it is not a Delta table).

    Read from the names of the commit files in ``_delta_log`` (one listing, no Spark job): the
    run log asks this of every table after every stage.
    """
    jvm = spark._jvm
    assert jvm is not None, "the Spark session has no JVM gateway"
    log_dir = jvm.org.apache.hadoop.fs.Path(table_path(warehouse, table) + "/_delta_log")
    fs = log_dir.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(log_dir):
        return None
    versions = [
        int(name[:20])
        for name in (status.getPath().getName() for status in fs.listStatus(log_dir))
        if len(name) == 25 and name.endswith(".json") and name[:20].isdigit()
    ]
    return max(versions) if versions else None


def commit_infos(spark: SparkSession, warehouse: str, table: Table, versions: Sequence[int]) -> list[dict]:
    """The ``commitInfo`` action of each commit in ``versions`` (``operation``, ``operationMetrics``...).

    Read straight from the commit files (the Delta protocol's newline-delimited JSON actions), which
    costs a file read where ``DeltaTable.history()`` costs a Spark job; a commit without one gives ``{}``.
    """
    jvm = spark._jvm
    assert jvm is not None, "the Spark session has no JVM gateway"
    log_dir = table_path(warehouse, table) + "/_delta_log"
    out: list[dict] = []
    for v in versions:
        path = jvm.org.apache.hadoop.fs.Path(f"{log_dir}/{v:020d}.json")
        fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(fs.open(path), "UTF-8"))
        info: dict = {}
        try:
            line = reader.readLine()
            while line is not None:
                if '"commitInfo"' in line:
                    info = json.loads(line).get("commitInfo") or {}
                    break
                line = reader.readLine()
        finally:
            reader.close()
        out.append(info)
    return out


#: Session setting whose value Delta records as the ``userMetadata`` of the next commits.
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@contextmanager
def commit_metadata(spark: SparkSession, text: str) -> Iterator[None]:
    """Delta commits made inside the block carry ``text`` as their ``userMetadata``.

    What a stage must know about a table's content on a later night goes there: it is committed
    atomically with the data it describes (a run killed between a data write and a separate
    bookkeeping write could not leave them out of step).
    """
    previous = spark.conf.get(USER_METADATA, None)
    spark.conf.set(USER_METADATA, text)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(USER_METADATA)
        else:
            spark.conf.set(USER_METADATA, previous)


def latest_commit_info(spark: SparkSession, warehouse: str, table: Table) -> dict:
    """The ``commitInfo`` of ``table``'s latest commit (``{}`` when it does not exist)."""
    v = latest_version(spark, warehouse, table)
    return commit_infos(spark, warehouse, table, [v])[0] if v is not None else {}


def read(spark: SparkSession, warehouse: str, table: Table) -> DataFrame:
    """Read ``table``; raises ``FileNotFoundError`` naming it when it was never written."""
    path = table_path(warehouse, table)
    if not DeltaTable.isDeltaTable(spark, path):
        raise FileNotFoundError(
            f"table {catalog_name(table)} does not exist at {path}: run the stage that writes it"
        )
    return spark.read.format("delta").load(path)


def _normalise(location: str) -> str:
    if location.startswith("file:"):
        location = location[len("file:") :]
    if "://" not in location:
        location = os.path.abspath(location)
    return location.rstrip("/")


#: ``(Spark application id, catalog name) -> location`` registered by this process. Every write
#: registers its table; once an application (its sessions share one catalog) has registered a name at a
#: location, the next call only checks that the name still exists instead of reading the table's
#: location back (``DESCRIBE DETAIL`` loads the Delta snapshot: about 0.1 s a call, 3 s of a night).
_REGISTERED: dict[tuple[str, str], str] = {}


def register(spark: SparkSession, warehouse: str, table: Table) -> None:
    """Register ``table`` in the Spark catalog as ``vidrec_<layer>.<name>``, pointing at this warehouse.

    A name registered earlier for another warehouse (another run in the same session) is re-pointed;
    dropping an external table's name never touches its files.
    """
    name = catalog_name(table)
    # an absolute location: Spark resolves a relative one against the database's folder
    path = _normalise(table_path(warehouse, table))
    key = (spark.sparkContext.applicationId, name)
    if _REGISTERED.get(key) == path and spark.catalog.tableExists(name):
        return
    spark.sql(f"CREATE DATABASE IF NOT EXISTS vidrec_{table[0]}")
    if spark.catalog.tableExists(name):
        try:
            detail = spark.sql(f"DESCRIBE DETAIL {name}").first()
            assert detail is not None, "DESCRIBE DETAIL returns one row"
            location = detail["location"]
        except Exception as exc:  # a name left pointing at a folder that is gone: re-point it
            log.warning("catalog: %s points at a missing table (%s); re-registering", name, exc)
            location = None
        if location is not None and _normalise(location) == path:
            _REGISTERED[key] = path
            return
        spark.sql(f"DROP TABLE {name}")
    spark.sql(f"CREATE TABLE {name} USING DELTA LOCATION '{path}'")
    _REGISTERED[key] = path


def register_all(spark: SparkSession, warehouse: str) -> list[str]:
    """Register every Delta table found under ``warehouse``; returns their catalog names."""
    jvm = spark._jvm
    assert jvm is not None, "the Spark session has no JVM gateway"
    jvm_path = jvm.org.apache.hadoop.fs.Path(str(warehouse))
    fs = jvm_path.getFileSystem(spark._jsc.hadoopConfiguration())
    names: list[str] = []
    if not fs.exists(jvm_path):
        return names
    for layer_status in fs.listStatus(jvm_path):
        layer = layer_status.getPath().getName()
        if not layer_status.isDirectory() or layer.startswith("_"):
            continue
        for table_status in fs.listStatus(layer_status.getPath()):
            table = (layer, table_status.getPath().getName())
            if table_status.isDirectory() and exists(spark, warehouse, table):
                register(spark, warehouse, table)
                names.append(catalog_name(table))
    return sorted(names)


def _writer(df: DataFrame, partition_by: Sequence[str]):
    writer = df.write.format("delta")
    if partition_by:
        # Delta's optimized write: one shuffle by partition value, files binned to a target size, so a
        # first load of 60 days writes ~60 files, not (tasks x days) small ones
        writer = writer.partitionBy(*partition_by).option("optimizeWrite", "true")
    return writer


def replace_partition(
    df: DataFrame,
    warehouse: str,
    table: Table,
    run_date: dt.date,
    partition_col: str = COL_RUN_DATE,
    extra_predicate: str | None = None,
    merge_schema: bool = False,
) -> None:
    """Replace the rows of ``run_date`` in ``table`` with ``df`` in one commit (idempotent).

    ``df`` must hold ``partition_col`` equal to ``run_date`` on every row; the table is created,
    partitioned by ``partition_col``, on first write. ``extra_predicate`` (SQL) narrows what is
    replaced, e.g. ``"algorithm IN ('als')"`` to replace one algorithm's lists of that date.
    ``merge_schema`` lets ``df`` add columns to an existing table (Delta's ``mergeSchema``; earlier
    partitions read them as null), for tables that gain columns between releases.

    Raises
    ------
    ValueError
        When ``df`` lacks ``partition_col``.
    """
    if partition_col not in df.columns:
        raise ValueError(
            f"replace_partition({catalog_name(table)}): DataFrame has no '{partition_col}' column"
        )
    path = table_path(warehouse, table)
    predicate = f"{partition_col} = '{run_date.isoformat()}'"
    if extra_predicate:
        predicate = f"{predicate} AND ({extra_predicate})"
    writer = _writer(df, [partition_col]).mode("overwrite").option("replaceWhere", predicate)
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    writer.save(path)
    register(df.sparkSession, warehouse, table)


def overwrite(df: DataFrame, warehouse: str, table: Table, partition_by: Sequence[str] = ()) -> None:
    """Replace all of ``table`` with ``df`` in one commit (schema replaced too)."""
    _writer(df, partition_by).mode("overwrite").option("overwriteSchema", "true").save(
        table_path(warehouse, table)
    )
    register(df.sparkSession, warehouse, table)


def append(
    df: DataFrame,
    warehouse: str,
    table: Table,
    partition_by: Sequence[str] = (),
    merge_schema: bool = False,
) -> None:
    """Append ``df`` to ``table`` in one commit (creating it).

    ``merge_schema`` lets this one write add new (nullable) columns to an existing table.
    """
    writer = _writer(df, partition_by).mode("append")
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    writer.save(table_path(warehouse, table))
    register(df.sparkSession, warehouse, table)


def _match_condition(keys: Sequence[str]) -> str:
    return " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)


def changed_rows(df: DataFrame, stored: DataFrame, ignore: Sequence[str] = ()) -> DataFrame:
    """Rows of ``df`` with no identical row in ``stored``: new keys and changed rows.

    Rows are compared on every column of ``df`` but ``ignore`` (e.g. the date that wrote a row),
    nulls equal to nulls; a column ``stored`` lacks makes every row changed.
    """
    if any(c not in stored.columns for c in df.columns if c not in ignore):
        return df
    cols = [c for c in df.columns if c not in ignore]
    other = stored.select(*[F.col(f"`{c}`").alias(f"_stored_{i}") for i, c in enumerate(cols)])
    same = [F.col(f"`{c}`").eqNullSafe(F.col(f"_stored_{i}")) for i, c in enumerate(cols)]
    return df.join(other, same, "left_anti")


def merge_upsert(
    df: DataFrame,
    warehouse: str,
    table: Table,
    keys: Sequence[str],
    update_if: str | None = None,
    compare_ignoring: Sequence[str] | None = None,
) -> int | None:
    """Upsert ``df`` into ``table`` on ``keys`` (update matched rows, insert new ones): one commit.

    ``update_if`` (SQL over ``s.`` the incoming and ``t.`` the stored row) limits which matched rows
    are updated, e.g. ``"s.updated_at >= t.updated_at"`` so that replaying an older run never
    overwrites a newer version of a row (out-of-order runs and backfills keep the latest state).
    ``compare_ignoring`` (columns, possibly none) merges only the rows of ``df`` that are new or differ
    from the stored row in a column other than these (:func:`changed_rows`), and makes no commit when
    there are none: a nightly drop that repeats the whole catalog rewrites only what changed. Returns
    the rows merged when they were compared, else ``None``.
    """
    path = table_path(warehouse, table)
    spark = df.sparkSession
    if not DeltaTable.isDeltaTable(spark, path):
        overwrite(df, warehouse, table)
        return None
    merged: int | None = None
    if compare_ignoring is not None:
        df = changed_rows(df, spark.read.format("delta").load(path), compare_ignoring).cache()
        merged = df.count()
    try:
        if merged != 0:
            (
                DeltaTable.forPath(spark, path)
                .alias("t")
                .merge(df.alias("s"), _match_condition(keys))
                .whenMatchedUpdateAll(condition=update_if)
                .whenNotMatchedInsertAll()
                .execute()
            )
    finally:
        if compare_ignoring is not None:
            df.unpersist()
    register(spark, warehouse, table)
    return merged
