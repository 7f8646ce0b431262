"""Feature shards on disk: Parquet written by Spark (or, small and local, by the driver) for the loader
seam to stream, and their retention.

Layout: ``<root>/<model>/run_date=<YYYY-MM-DD>/<split>/part-*.parquet`` with ``root`` =
``<warehouse>/features`` by default and ``split`` one of ``train``, ``val``, ``items``. The
loader (pyarrow or Petastorm) shards by whole row group (``index % shard_count``), so
:func:`write_shards` writes a number of row groups that is a multiple of the process count, at
least ``min_row_groups_per_process`` per process, each near ``rows_per_row_group`` rows
(round-robin: sizes differ by at most the number of upstream partitions, or by one when the driver
writes them). A rewrite of a run date replaces it.

Large row groups (131,072 rows by default) matter: Petastorm 0.13.1 reads a row group in time that grows
with the number of files in the dataset, so 5.6M rows as 343 groups of 16k read at 0.9M rows/s and as 43
groups of 131k at 15.7M rows/s (BENCHMARKS.md, "Loader row groups").
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

FEATURES_DIR = "features"
_RUN_DIR = re.compile(r"^run_date=(\d{4}-\d{2}-\d{2})$")


@dataclass
class ShardInfo:
    """What :func:`write_shards` wrote.

    Attributes
    ----------
    path : str
        The dataset folder (a local path or URL).
    rows : int
    row_groups : int
        Files written (one row group each at these sizes).
    rows_per_file : list of int
        Row counts of the files, in file-name order.
    columns : list of str
    checksum : str
        Order-independent hash of the rows' content (equal data, equal checksum, whatever the
        partitioning): a training run resumes a checkpoint only on the same data.
    """

    path: str
    rows: int
    row_groups: int
    rows_per_file: list[int] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    checksum: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dictionary."""
        return asdict(self)


def features_root(warehouse: str, shard_root: str | None = None) -> str:
    """``shard_root`` when given, else ``<warehouse>/features``."""
    return str(shard_root).rstrip("/") if shard_root else f"{str(warehouse).rstrip('/')}/{FEATURES_DIR}"


def shard_dir(root: str, model_name: str, run_date: str) -> str:
    """``<root>/<model_name>/run_date=<run_date>``: the shards of one model and run date."""
    return f"{root.rstrip('/')}/{model_name}/run_date={run_date}"


def plan_row_groups(rows: int, num_processes: int, rows_per_row_group: int, min_per_process: int) -> int:
    """Row groups to write: a multiple of ``num_processes``, >= ``min_per_process`` per process, <= ``rows``.

    Raises
    ------
    ValueError
        When ``rows < num_processes`` (some process would get no data) or an argument is < 1.
    """
    if num_processes < 1 or rows_per_row_group < 1 or min_per_process < 1:
        raise ValueError("num_processes, rows_per_row_group and min_per_process must be >= 1")
    if rows < num_processes:
        raise ValueError(f"{rows} rows cannot feed {num_processes} processes (at least one row group each)")
    wanted = max(num_processes * min_per_process, math.ceil(rows / rows_per_row_group))
    groups = math.ceil(wanted / num_processes) * num_processes
    while groups > rows:
        groups -= num_processes
    return groups


#: Frames of up to this many rows bound for a local folder are written by the driver (:func:`write_shards`).
DRIVER_WRITE_MAX_ROWS = 500_000


def write_shards(
    df: DataFrame,
    path: str,
    num_processes: int,
    rows_per_row_group: int = 131072,
    min_row_groups_per_process: int = 2,
    driver_max_rows: int = DRIVER_WRITE_MAX_ROWS,
) -> ShardInfo:
    """Write ``df`` as Parquet at ``path`` (replacing it): even row groups for ``num_processes`` readers.

    Parameters
    ----------
    df : DataFrame
        Rows with scalar or fixed-length array columns (no nulls: PyTorch cannot batch them).
    path : str
        Output folder (local path or URL readable by the training processes).
    num_processes : int
        Readers that will shard the dataset.
    rows_per_row_group, min_row_groups_per_process : int
        See :func:`plan_row_groups`.
    driver_max_rows : int
        Up to this many rows and to a local ``path``, the rows are collected (Arrow) and the driver
        writes the files, row ``i`` to file ``i mod groups`` (one row group each, sizes differing by at
        most one): a night writes 15 such frames for its deep models, and a Spark write's shuffle,
        tasks and commit cost 0.3-0.7 s more each on the demo. Larger frames, or remote folders, are
        written by Spark (a round-robin repartition); 0 always does.

    Returns
    -------
    ShardInfo

    Raises
    ------
    ValueError
        When ``df`` has fewer rows than ``num_processes``, or fewer files than processes were written.
    """
    df = df.persist()  # counted, then written: computed once
    try:
        # rows and the content checksum in one pass (a sum of row hashes: any order, any partitioning)
        row_hash = F.pmod(F.xxhash64(*[F.col(c) for c in df.columns]), F.lit(2**31 - 1))
        totals = df.agg(F.count(F.lit(1)).alias("_n"), F.sum(row_hash).alias("_h")).first()
        assert totals is not None, "an aggregate without grouping returns one row"
        rows, checksum = int(totals["_n"]), f"{int(totals['_h'] or 0):x}"
        groups = plan_row_groups(rows, num_processes, rows_per_row_group, min_row_groups_per_process)
        local = _local(path)
        if local is not None and rows <= driver_max_rows:
            _write_on_driver(df.toArrow(), local, groups)
        else:
            df.repartition(groups).write.mode("overwrite").option("compression", "snappy").parquet(path)
    finally:
        df.unpersist()
    per_file = rows_per_file(df.sparkSession, path)
    info = ShardInfo(
        path=path,
        rows=int(sum(per_file)),
        row_groups=len(per_file),
        rows_per_file=per_file,
        columns=df.columns,
        checksum=checksum,
    )
    if info.rows != rows:
        raise RuntimeError(f"write_shards({path}): wrote {info.rows} rows, expected {rows}")
    if info.row_groups < num_processes:
        raise ValueError(
            f"write_shards({path}): only {info.row_groups} non-empty files for {num_processes} processes; "
            "a rank would read no row group"
        )
    log.info(
        "shards: %d rows in %d row groups (%d..%d rows) at %s",
        rows,
        info.row_groups,
        min(per_file),
        max(per_file),
        path,
    )
    return info


def _write_on_driver(table: pa.Table, path: Path, groups: int) -> None:
    """``table`` as ``groups`` Parquet files of one row group each under ``path`` (replaced): row ``i``
    in file ``i mod groups``, as a round-robin repartition deals them. Written beside ``path`` first,
    so a failure leaves the previous folder (or none), never half a dataset."""
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    try:
        for g in range(groups):
            part = table.take(pa.array(np.arange(g, table.num_rows, groups)))
            name = staging / f"part-{g:05d}.parquet"
            pq.write_table(part, name, compression="snappy", row_group_size=max(1, len(part)))
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def rows_per_file(spark: Any, path: str) -> list[int]:
    """Rows of each non-empty Parquet file under ``path``, in file-name order: read from the files'
    footers when ``path`` is local (no Spark job), else counted by Spark."""
    local = _local(path)
    if local is not None:
        counts = [pq.read_metadata(f).num_rows for f in sorted(local.glob("*.parquet"))]
        return [n for n in counts if n > 0]
    found = (
        spark.read.parquet(path)
        .groupBy(F.input_file_name().alias("_f"))
        .agg(F.count(F.lit(1)).alias("_n"))
        .orderBy("_f")
        .collect()
    )
    return [int(r["_n"]) for r in found]


def _local(path: str) -> Path | None:
    parsed = urlparse(str(path))
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else str(path))
    return None


def cleanup_shards(warehouse: str, keep_last: int = 3, shard_root: str | None = None) -> list[str]:
    """Delete all but the ``keep_last`` newest run dates of every model's shards; returns what was removed.

    Parameters
    ----------
    warehouse : str
        Warehouse root (shards under ``<warehouse>/features`` unless ``shard_root``).
    keep_last : int
        Run dates kept per model, ``>= 1``.
    shard_root : str, optional

    Raises
    ------
    ValueError
        When ``keep_last < 1``.
    NotImplementedError
        For a non-local root (remote stores keep shards until a lifecycle rule removes them).
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    root = _local(features_root(warehouse, shard_root))
    if root is None:
        raise NotImplementedError(f"cleanup_shards: only local folders are supported, got {warehouse}")
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        runs = sorted(
            (m.group(1), p) for p in model_dir.iterdir() if p.is_dir() and (m := _RUN_DIR.match(p.name))
        )
        for _, old in runs[:-keep_last]:
            shutil.rmtree(old)
            removed.append(str(old))
    if removed:
        log.info("shards: removed %d old run(s): %s", len(removed), ", ".join(removed))
    return removed
