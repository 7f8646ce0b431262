"""Right to be forgotten: erase users from every table and file of the warehouse.

``forget_users`` removes every row of the given users, wherever the warehouse holds one:

1. **Delta tables** (any ``<warehouse>/**`` folder with a ``_delta_log``): rows whose ``user_id`` is
   one of the users, or (in tables without ``user_id``) whose ``user_idx`` is one of theirs, and
   rows whose ``raw`` text (quarantine) names one of them as a token (the quoted JSON value or a
   CSV field: ``u1`` matches ``"u1"`` and ``,u1,`` but never ``u10``). Deletes are MERGEs against a
   DataFrame of the ids, so the id never appears as a literal in the commit's ``predicate``
   (a ``DELETE ... WHERE user_id IN ('u1')`` would write it into ``_delta_log`` for good).
   ``silver/user_index`` is cleaned last, after the ids were mapped to their ``user_idx``.
2. **Deletion vectors**: a table with the ``deletionVectors`` feature only *marks* rows deleted
   (the Parquet file keeps them), both in our MERGE and in earlier MERGE/UPDATEs of the nightly
   (an upserted profile leaves its previous version soft-deleted in a live file). So after the
   deletes every such table gets ``REORG TABLE ... APPLY (PURGE)``, which rewrites each file that
   carries a deletion vector without the marked rows. (Disabling deletion vectors before the
   delete alone would not do: rows soft-deleted by earlier commits would survive in live files.)
3. **Files outside Delta** (``models/**``, ``features/**``, any non-Delta folder, and the folders
   ``deep.launch.shard_root`` / ``artifact_root`` when they lie outside the warehouse):
   Parquet files with a ``user_id``, a ``user_idx`` column, or the ``id`` column of an ALS model's
   ``userFactors`` are rewritten without the users' rows, file by file (same name, same folder,
   so partitioning and model layout are kept). Deep models: the users' rows of the user embeddings
   in every ``model.pt`` are zeroed, and the epoch checkpoints of models with user embeddings are
   deleted (:mod:`vidrec.models.deep.erase`; no checkpoint can be resumed after an erasure anyway),
   as are training diagnostics (rows each rank read). ``_temporary`` folders (debris of killed
   Spark writes) are deleted. Stale RDD checkpoints under ``<warehouse>/_checkpoints`` (ALS writes
   its factor and rating blocks there) are deleted.
4. With ``vacuum_retention_hours`` set: ``VACUUM`` of every table that holds user data (with
   ``spark.databricks.delta.retentionDurationCheck.enabled=false`` for that call only when the
   retention is under 168 h), which deletes the files the deletes replaced and the
   ``_change_data`` (CDF) files; then the **Delta log is truncated** at a fresh checkpoint:
   commit JSONs, ``.crc`` checksums and older checkpoints hold per-file ``minValues``/``maxValues``
   statistics (a user id is there whenever it was the smallest or largest of a file), and the
   ``.crc`` files hold the whole file list with those statistics. Time travel to versions before
   the forget is gone for those tables (it already is for their data files after VACUUM).

The command line (:mod:`vidrec.cli.forget`) runs it holding the warehouse's lease
(:mod:`vidrec.pipeline.lease`), so no nightly runs meanwhile: a nightly's roll-back can never restore
a version from before the erasure, and no later stage writes rows read before it. (A zero-hour VACUUM
and the log truncation would also break readers of older snapshots.) Users the warehouse does not
hold are counted in ``unknown_users``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.models.deep import schema as deep_files

log = logging.getLogger(__name__)

RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
#: Delta's default minimum retention; below it VACUUM needs the retention check disabled.
DEFAULT_MIN_RETENTION_HOURS = 168.0
#: Folders directly under the warehouse that are not data (Spark's catalog, RDD checkpoints).
CATALOG_DIR = "_spark_catalog"
CHECKPOINTS_DIR = "_checkpoints"
#: Column of an ALS model's ``userFactors`` folder that holds the user's integer index.
ALS_USER_FACTORS_DIRS = frozenset({"userFactors"})
#: Characters that may surround an id inside a raw JSON or CSV record.
_TOKEN_DELIMS = r"\s\"',:;|\[\]{}()="
_VERSION_RE = re.compile(r"^(\d{20})(?:\.(\d{20}))?\.")


@dataclass
class ForgetReport:
    """What one forget did; holds counts and relative paths only, never a user id."""

    users: int = 0
    unknown_users: int = 0
    user_idx_found: int = 0
    delta_rows_deleted: dict[str, int] = field(default_factory=dict)
    artifact_rows_deleted: dict[str, int] = field(default_factory=dict)
    model_rows_zeroed: dict[str, int] = field(default_factory=dict)
    deleted_checkpoints: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    purged_deletion_vectors: list[str] = field(default_factory=list)
    vacuumed: list[str] = field(default_factory=list)
    log_truncated: dict[str, int] = field(default_factory=dict)
    deleted_paths: list[str] = field(default_factory=list)
    unhandled_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "unknown_users": self.unknown_users,
            "user_idx_found": self.user_idx_found,
            "delta_rows_deleted": dict(self.delta_rows_deleted),
            "artifact_rows_deleted": dict(self.artifact_rows_deleted),
            "model_rows_zeroed": dict(self.model_rows_zeroed),
            "deleted_checkpoints": list(self.deleted_checkpoints),
            "roots": list(self.roots),
            "purged_deletion_vectors": list(self.purged_deletion_vectors),
            "vacuumed": list(self.vacuumed),
            "log_truncated": dict(self.log_truncated),
            "deleted_paths": list(self.deleted_paths),
            "unhandled_files": list(self.unhandled_files),
            "seconds": round(self.seconds, 1),
        }


# --- file system helpers (Hadoop FS, so s3a://, abfss://, gs:// work like local paths) ----------


class _FS:
    def __init__(self, spark: SparkSession, root: str) -> None:
        jvm = spark._jvm
        assert jvm is not None, "the Spark session has no JVM gateway"
        self._jvm = jvm
        self.root = self._jvm.org.apache.hadoop.fs.Path(root)
        self.fs = self.root.getFileSystem(spark._jsc.hadoopConfiguration())
        self.root = self.fs.makeQualified(self.root)
        self.root_str = self.root.toString().rstrip("/")

    def path(self, text: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(text)

    def exists(self, p: Any) -> bool:
        return bool(self.fs.exists(p))

    def list(self, p: Any) -> list[Any]:
        return list(self.fs.listStatus(p)) if self.fs.exists(p) else []

    def delete(self, p: Any, recursive: bool = True) -> bool:
        return bool(self.fs.delete(p, recursive))

    def rename(self, src: Any, dst: Any) -> bool:
        return bool(self.fs.rename(src, dst))

    def rel(self, p: Any) -> str:
        text = self.fs.makeQualified(p).toString()
        return text[len(self.root_str) :].lstrip("/") if text.startswith(self.root_str) else text


@dataclass
class _Layout:
    delta_tables: list[Any] = field(default_factory=list)  # Hadoop Paths of table roots
    parquet_groups: list[tuple[Any, list[Any]]] = field(default_factory=list)  # (dir, parquet files)
    temporary_dirs: list[Any] = field(default_factory=list)
    model_files: list[Any] = field(default_factory=list)  # deep models' model.pt
    checkpoints: list[Any] = field(default_factory=list)  # deep models' checkpoints/epoch-*.pt
    diagnostics: list[Any] = field(default_factory=list)  # deep training diagnostics (rows each rank read)
    other_files: list[Any] = field(default_factory=list)


_SIDE_FILES = re.compile(r"^(_SUCCESS|_common_metadata|_metadata|part-\d+(-[\w-]+)?(\.c\d+)?(\.txt)?)$")
#: Files of a deep model's folder that hold no per-user row: its spec, its metrics, its training logs.
_DEEP_SIDE_FILES = re.compile(r"^(spec\.json|metrics\.json|rank-\d+\.log)$")


def _walk(fs: _FS, directory: Any, out: _Layout, top: bool) -> None:
    entries = fs.list(directory)
    names = {e.getPath().getName() for e in entries}
    if "_delta_log" in names:
        out.delta_tables.append(directory)
        return
    parquet: list[Any] = []
    for e in entries:
        p = e.getPath()
        name = p.getName()
        if e.isDirectory():
            if top and name in (CATALOG_DIR, CHECKPOINTS_DIR):
                continue
            if name == "_temporary":
                out.temporary_dirs.append(p)
                continue
            if name == deep_files.DIAGNOSTICS_DIR:
                out.diagnostics.append(p)
                continue
            _walk(fs, p, out, top=False)
        elif name.endswith(".parquet") and not name.startswith((".", "_")):
            parquet.append(p)
        elif name == deep_files.MODEL_FILE:
            out.model_files.append(p)
        elif (
            directory.getName() == deep_files.CHECKPOINTS_DIR
            and name.startswith(deep_files.CHECKPOINT_PREFIX)
            and name.endswith(".pt")
        ):
            out.checkpoints.append(p)
        elif (
            not (name.startswith(".") and name.endswith(".crc"))
            and not _SIDE_FILES.match(name)
            and not _DEEP_SIDE_FILES.match(name)
            and not top
        ):
            out.other_files.append(p)
    if parquet:
        out.parquet_groups.append((directory, parquet))


# --- matching --------------------------------------------------------------------------------


def token_pattern(user_id: str) -> str:
    """Java regex matching ``user_id`` as a whole token of a raw JSON/CSV record.

    The id must sit between the start/end of the text or a delimiter (quote, comma, colon,
    whitespace, brackets...), so ``u1`` matches ``{"user_id": "u1"}`` and ``u1,2026-01-01`` but not
    ``"u10"`` or ``"xu1"``.
    """
    quoted = "\\Q" + user_id.replace("\\E", "\\E\\\\E\\Q") + "\\E"
    return f"(?<![^{_TOKEN_DELIMS}]){quoted}(?![^{_TOKEN_DELIMS}])"


def _raw_condition(col: str, user_ids: Sequence[str]) -> Column:
    cond = F.lit(False)
    for uid in user_ids:
        cond = cond | F.coalesce(F.col(col).rlike(token_pattern(uid)), F.lit(False))
    return cond


def _user_key(columns: Iterable[str], directory_name: str) -> str | None:
    cols = set(columns)
    if C.COL_USER in cols:
        return C.COL_USER
    if C.COL_USER_IDX in cols:
        return C.COL_USER_IDX
    if directory_name in ALS_USER_FACTORS_DIRS and "id" in cols:
        return "id"
    return None


def _key_condition(key: str, user_ids: Sequence[str], user_idx: Sequence[int]) -> Column:
    values: Sequence[Any] = user_ids if key == C.COL_USER else user_idx
    if not values:
        return F.lit(False)
    return F.coalesce(F.col(key).isin(list(values)), F.lit(False))


# --- Delta tables -----------------------------------------------------------------------------


def _delta_columns(spark: SparkSession, path: str) -> list[str]:
    return spark.read.format("delta").load(path).columns


def _lookup_user_idx(spark: SparkSession, tables: Sequence[str], user_ids: Sequence[str]) -> list[int]:
    """Every ``user_idx`` any table pairs with one of ``user_ids`` (the index first of all)."""
    found: set[int] = set()
    ids = spark.createDataFrame([(u,) for u in user_ids], f"{C.COL_USER} string")
    for path in tables:
        cols = _delta_columns(spark, path)
        if C.COL_USER in cols and C.COL_USER_IDX in cols:
            rows = (
                spark.read.format("delta")
                .load(path)
                .join(ids, C.COL_USER, "left_semi")
                .select(C.COL_USER_IDX)
                .where(F.col(C.COL_USER_IDX).isNotNull())
                .distinct()
                .collect()
            )
            found.update(int(r[0]) for r in rows)
    return sorted(found)


def _merge_delete(spark: SparkSession, path: str, source: DataFrame, on: str) -> int:
    """``MERGE INTO path t USING source s ON t.<on> = s.<on> WHEN MATCHED THEN DELETE``; deleted rows."""
    metrics = (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(source.alias("s"), f"t.`{on}` = s.`{on}`")
        .whenMatchedDelete()
        .execute()
        .collect()
    )
    if metrics and "num_deleted_rows" in metrics[0].asDict():
        return int(metrics[0]["num_deleted_rows"])
    return -1


def _delete_from_table(
    spark: SparkSession, path: str, user_ids: Sequence[str], user_idx: Sequence[int]
) -> tuple[int, set[str]]:
    """Delete the users' rows from one Delta table (no commit when it holds none).

    Returns the rows deleted and which of ``user_ids`` the table held (by ``user_id``, or as a token of
    its ``raw`` text), read before the delete.
    """
    df = spark.read.format("delta").load(path)
    cols = df.columns
    deleted = 0
    found: set[str] = set()
    key = _user_key(cols, "")
    if key is not None:
        values = user_ids if key == C.COL_USER else user_idx
        if values:
            schema = f"`{key}` string" if key == C.COL_USER else f"`{key}` int"
            source = spark.createDataFrame([(v,) for v in values], schema)
            hits = [r[0] for r in df.join(source, key, "left_semi").select(key).distinct().collect()]
            if hits:
                if key == C.COL_USER:
                    found.update(str(h) for h in hits)
                deleted += _merge_delete(spark, path, source, key)
    if C.COL_RAW in cols and dict(df.dtypes)[C.COL_RAW] == "string":
        # the matching raw texts themselves are the merge source: no id in the commit predicate
        hits_df = df.where(_raw_condition(C.COL_RAW, user_ids)).select(C.COL_RAW).distinct().cache()
        texts = [r[0] for r in hits_df.collect()]
        if texts:
            patterns = {uid: re.compile(_python_token(uid)) for uid in user_ids}
            found.update(uid for uid, pat in patterns.items() if any(pat.search(t) for t in texts))
            deleted += _merge_delete(spark, path, hits_df, C.COL_RAW)
        hits_df.unpersist()
    return deleted, found


def _python_token(user_id: str) -> str:
    """:func:`token_pattern` for Python's ``re`` (same delimiters)."""
    return f"(?<![^{_TOKEN_DELIMS}]){re.escape(user_id)}(?![^{_TOKEN_DELIMS}])"


def _has_deletion_vectors(spark: SparkSession, path: str) -> bool:
    detail_row = DeltaTable.forPath(spark, path).detail().first()
    assert detail_row is not None, "DeltaTable.detail() returns one row"
    detail = detail_row.asDict()
    features = detail.get("tableFeatures") or []
    props = detail.get("properties") or {}
    return "deletionVectors" in features or props.get("delta.enableDeletionVectors", "false") == "true"


def _vacuum(spark: SparkSession, path: str, retention_hours: float) -> None:
    """VACUUM ``path``; session settings changed for this call only, then put back.

    - the retention check is disabled when ``retention_hours`` is under Delta's 168 h minimum;
    - VACUUM lists the table with ``spark.sql.sources.parallelPartitionDiscovery.parallelism``
      tasks (default 10,000: ~40 s per tiny table on 2 cores); it is lowered to the session's
      default parallelism.
    """
    settings = {LISTING_PARALLELISM: str(max(2, spark.sparkContext.defaultParallelism))}
    if retention_hours < DEFAULT_MIN_RETENTION_HOURS:
        settings[RETENTION_CHECK] = "false"
    previous = {k: spark.conf.get(k, None) for k in settings}
    v: str | None  # both loops' value (None: a setting that was unset)
    for k, v in settings.items():
        spark.conf.set(k, v)
    try:
        DeltaTable.forPath(spark, path).vacuum(retention_hours)
    finally:
        for k, v in previous.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def truncate_log(spark: SparkSession, fs: _FS, table_path: Any) -> int:
    """Checkpoint the table at its latest version and delete every log file of older versions.

    Returns the checkpoint version. What is deleted is what Delta's own log clean-up deletes once
    ``delta.logRetentionDuration`` has passed (commit JSONs, ``.crc`` checksums, checkpoints and
    compacted logs of earlier versions); it is done now because those files carry column
    statistics (min/max values) of removed data files, user ids among them.
    """
    jvm = spark._jvm
    assert jvm is not None, "the Spark session has no JVM gateway"
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(
        spark._jsparkSession,
        table_path.toString(),
    )
    none = jvm.scala.Option.empty()
    snapshot = delta_log.update(False, none, none)
    version = int(snapshot.version())
    delta_log.checkpoint()
    log_dir = fs.path(table_path.toString() + "/_delta_log")
    for sub in (log_dir, fs.path(log_dir.toString() + "/_staged_commits")):
        for status in fs.list(sub):
            m = _VERSION_RE.match(status.getPath().getName())
            if m is None or status.isDirectory():
                continue
            last = int(m.group(2) or m.group(1))
            if last < version:
                fs.delete(status.getPath(), False)
    return version


# --- Parquet artifacts ------------------------------------------------------------------------


def _rewrite_parquet_group(
    spark: SparkSession,
    fs: _FS,
    directory: Any,
    files: Sequence[Any],
    user_ids: Sequence[str],
    user_idx: Sequence[int],
) -> int:
    """Rewrite the files of one folder that hold the users' rows; returns rows removed."""
    names = [f.toString() for f in files]
    df = spark.read.parquet(*names)
    key = _user_key(df.columns, directory.getName())
    if key is None:
        return 0
    cond = _key_condition(key, user_ids, user_idx)
    hits = df.where(cond).groupBy(F.col("_metadata.file_path").alias("f")).count().collect()
    removed = 0
    by_name = {fs.fs.makeQualified(f).toUri().getPath(): f for f in files}
    for row in hits:
        target = by_name.get(fs.path(row["f"]).toUri().getPath())
        if target is None:  # should not happen: a file Spark read that we did not list
            raise RuntimeError(f"forget: cannot map {row['f']} back to a file of {fs.rel(directory)}")
        tmp = fs.path(f"{directory.toString()}/_forget_{uuid.uuid4().hex}")
        kept = spark.read.parquet(target.toString()).where(~cond)
        kept.coalesce(1).write.mode("errorifexists").parquet(tmp.toString())
        written = [s.getPath() for s in fs.list(tmp) if s.getPath().getName().endswith(".parquet")]
        fs.delete(target, False)
        if written:
            if not fs.rename(written[0], target):
                raise RuntimeError(f"forget: could not move the rewritten file to {fs.rel(target)}")
        fs.delete(tmp, True)
        removed += int(row["count"])
    return removed


def _partition_dir_hits(
    fs: _FS, layout: _Layout, user_ids: Sequence[str], user_idx: Sequence[int]
) -> list[Any]:
    """Folders of partitioned datasets whose partition value is one of the users (``user_idx=7``)."""
    wanted = {f"{C.COL_USER}={u}" for u in user_ids} | {f"{C.COL_USER_IDX}={i}" for i in user_idx}
    hits = []
    for directory, _ in layout.parquet_groups:
        p = directory
        while p is not None and fs.rel(p):
            if p.getName() in wanted:
                hits.append(p)
                break
            p = p.getParent()
    return hits


# --- the whole thing --------------------------------------------------------------------------


def _validate_ids(user_ids: Sequence[str]) -> list[str]:
    if isinstance(user_ids, str):
        raise TypeError("forget_users: user_ids must be a list of ids, not one string")
    ids = sorted({str(u).strip() for u in user_ids if str(u).strip()})
    if not ids:
        raise ValueError("forget_users: no user id given")
    return ids


def _local_path(fs: _FS, p: Any) -> str | None:
    """The local file system path of ``p``, or ``None`` when it lives elsewhere (``s3a://``...)."""
    uri = fs.fs.makeQualified(p).toUri()
    return str(uri.getPath()) if uri.getScheme() in (None, "file") else None


def _erase_files_outside_delta(
    spark: SparkSession,
    fs: _FS,
    layout: _Layout,
    ids: Sequence[str],
    user_idx: Sequence[int],
    report: ForgetReport,
    warehouse: bool,
) -> None:
    """Step 2 under one root: Parquet rewritten, deep models' rows zeroed, checkpoints and debris deleted."""
    for tmp in layout.temporary_dirs:
        fs.delete(tmp, True)
        report.deleted_paths.append(fs.rel(tmp))
    for directory in _partition_dir_hits(fs, layout, ids, user_idx):
        fs.delete(directory, True)
        report.deleted_paths.append(fs.rel(directory))
    for directory, files in layout.parquet_groups:
        files = [f for f in files if fs.exists(f)]
        if not files:
            continue
        n = _rewrite_parquet_group(spark, fs, directory, files, ids, user_idx)
        if n:
            report.artifact_rows_deleted[fs.rel(directory)] = n
    if user_idx and (layout.model_files or layout.checkpoints or layout.diagnostics):
        from vidrec.models.deep import erase  # torch: only when there are deep models

        for p in layout.model_files:
            local = _local_path(fs, p)
            if local is None:
                report.unhandled_files.append(fs.rel(p))
                continue
            n = erase.erase_from_model_file(local, user_idx)
            if n:
                report.model_rows_zeroed[fs.rel(p)] = n
        for p in layout.checkpoints:
            local = _local_path(fs, p)
            if local is None or erase.checkpoint_holds_users(local):
                fs.delete(p, False)
                report.deleted_checkpoints.append(fs.rel(p))
        for p in layout.diagnostics:  # rows each training rank read, by user_idx: debugging output only
            fs.delete(p, True)
            report.deleted_paths.append(fs.rel(p))
    if warehouse:
        report.unhandled_files = [*report.unhandled_files, *[fs.rel(p) for p in layout.other_files]]


def forget_users(
    spark: SparkSession,
    warehouse: str,
    user_ids: list[str],
    vacuum_retention_hours: float | None,
    extra_roots: Sequence[str] = (),
    groups: Sequence[Sequence[str]] | None = None,
    guard: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Delete ``user_ids`` from every table and file under ``warehouse`` (and ``extra_roots``).

    Parameters
    ----------
    spark : SparkSession
        A session with Delta (``vidrec.pipeline.session.build_spark``).
    warehouse : str
        Warehouse root.
    user_ids : list of str
        The users to forget, as stored (pseudonyms when ``privacy.pseudonymize`` is on: see
        :mod:`vidrec.cli.forget`, which maps original ids).
    vacuum_retention_hours : float or None
        ``None``: delete logically only (rows gone from every current table version; the files
        that held them stay until the next VACUUM past the table's retention). A number: VACUUM
        every table that holds user data with that retention (``0`` removes every replaced file
        now) and truncate the Delta log of those tables at a fresh checkpoint.
    extra_roots : sequence of str
        Folders outside the warehouse that hold files keyed by user (``deep.launch.shard_root``,
        ``deep.launch.artifact_root``, a file-store MLflow tracking folder): their Parquet files are
        rewritten, their deep models' rows zeroed and their checkpoints deleted like the
        warehouse's. Missing folders are skipped.
    groups : sequence of sequences of str, optional
        The ids that are one user (e.g. an original id and its pseudonym); ``unknown_users`` counts
        the groups none of whose ids any Delta table held. Default: each id alone.
    guard : callable, optional
        Called between the steps (the warehouse lease's check); what it raises stops the erasure.

    Returns
    -------
    dict
        :class:`ForgetReport` as a dict: rows deleted per table and per artifact folder (relative
        paths), user rows zeroed per deep model file, checkpoints deleted, tables purged of deletion
        vectors, vacuumed, log-truncated, and how many users were found nowhere. Never the ids.

    Raises
    ------
    FileNotFoundError
        When ``warehouse`` does not exist.
    ValueError
        When ``user_ids`` is empty, or the retention is negative.
    """
    ids = _validate_ids(user_ids)
    if vacuum_retention_hours is not None and vacuum_retention_hours < 0:
        raise ValueError(f"forget_users: vacuum_retention_hours must be >= 0, got {vacuum_retention_hours}")
    check = guard or (lambda: None)
    start = time.perf_counter()
    fs = _FS(spark, str(warehouse))
    if not fs.exists(fs.root):
        raise FileNotFoundError(f"forget_users: warehouse {warehouse} does not exist")
    report = ForgetReport(users=len(groups) if groups is not None else len(ids))
    layout = _Layout()
    _walk(fs, fs.root, layout, top=True)
    tables = [t.toString() for t in layout.delta_tables]

    # 1. user_id -> user_idx, before the index loses them
    user_idx = _lookup_user_idx(spark, tables, ids)
    report.user_idx_found = len(user_idx)
    log.info("forget: %d user(s), %d index number(s); %d Delta tables", len(ids), len(user_idx), len(tables))

    # 2. files outside Delta: rewritten without the users' rows (while the mapping still exists)
    t_art = time.perf_counter()
    _erase_files_outside_delta(spark, fs, layout, ids, user_idx, report, warehouse=True)
    checkpoints = fs.path(fs.root_str + "/" + CHECKPOINTS_DIR)
    current = spark.sparkContext._jsc.sc().getCheckpointDir()
    current_dir = current.get() if current.isDefined() else ""
    for status in fs.list(checkpoints):
        p = status.getPath()
        if status.isDirectory() and fs.fs.makeQualified(p).toString() != current_dir.rstrip("/"):
            fs.delete(p, True)
            report.deleted_paths.append(fs.rel(p))
    report.roots.append(fs.root_str)
    for root in dict.fromkeys(str(r) for r in extra_roots if r):
        other = _FS(spark, root)
        if other.root_str == fs.root_str or other.root_str.startswith(fs.root_str + "/"):
            continue  # inside the warehouse: done above
        if not other.exists(other.root):
            log.info("forget: %s does not exist: nothing to check there", root)
            continue
        extra = _Layout()
        _walk(other, other.root, extra, top=False)
        extra.delta_tables = []
        _erase_files_outside_delta(spark, other, extra, ids, user_idx, report, warehouse=False)
        report.roots.append(other.root_str)
    log.info(
        "forget: files outside Delta checked in %.1f s under %s",
        time.perf_counter() - t_art,
        ", ".join(report.roots),
    )
    if report.unhandled_files:
        log.warning(
            "forget: %d file(s) outside Delta are neither Parquet, deep models nor known metadata and were "
            "not checked: %s",
            len(report.unhandled_files),
            ", ".join(report.unhandled_files[:20]),
        )
    check()

    # 3. Delta tables: the index last
    user_tables: list[str] = []
    found: set[str] = set()
    index_path = f"{fs.root_str}/{C.T_USER_INDEX[0]}/{C.T_USER_INDEX[1]}"
    ordered = sorted(tables, key=lambda t: (fs.fs.makeQualified(fs.path(t)).toString() == index_path, t))
    for path in ordered:
        cols = _delta_columns(spark, path)
        if _user_key(cols, "") is None and C.COL_RAW not in cols:
            continue
        t0 = time.perf_counter()
        user_tables.append(path)
        n, in_table = _delete_from_table(spark, path, ids, user_idx)
        found |= in_table
        rel = fs.rel(fs.path(path))
        if n:
            report.delta_rows_deleted[rel] = n
        t1 = time.perf_counter()
        if _has_deletion_vectors(spark, path):
            spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
            report.purged_deletion_vectors.append(rel)
        log.info(
            "forget: %s: %d row(s) deleted in %.1f s, deletion vectors purged in %.1f s",
            rel,
            n,
            t1 - t0,
            time.perf_counter() - t1,
        )
    users = [list(g) for g in groups] if groups is not None else [[i] for i in ids]
    report.unknown_users = sum(1 for g in users if not any(str(u).strip() in found for u in g))
    if report.unknown_users:
        log.warning(
            "forget: %d of %d user(s) were in no table (already forgotten, or an id the warehouse never "
            "held)",
            report.unknown_users,
            len(users),
        )
    check()

    # 4. physical removal: VACUUM, then the log history that still holds statistics
    if vacuum_retention_hours is not None:
        for path in user_tables:
            rel = fs.rel(fs.path(path))
            t0 = time.perf_counter()
            _vacuum(spark, path, float(vacuum_retention_hours))
            report.vacuumed.append(rel)
            t1 = time.perf_counter()
            report.log_truncated[rel] = truncate_log(spark, fs, fs.path(path))
            log.info(
                "forget: %s: vacuumed in %.1f s, log truncated at version %d in %.1f s",
                rel,
                t1 - t0,
                report.log_truncated[rel],
                time.perf_counter() - t1,
            )
    else:
        log.warning(
            "forget: no VACUUM requested: the users' rows are gone from every current table version, "
            "but the files that held them stay until a VACUUM past each table's retention"
        )
    report.seconds = time.perf_counter() - start
    log.info("forget: done in %.1f s: %s", report.seconds, report.as_dict())
    return report.as_dict()


# --- command line (jobs/forget_user.py) -------------------------------------------------------


def read_ids_file(path: str) -> list[str]:
    """User ids from a text file: one per line; blank lines and ``#`` comments ignored."""
    with open(path, encoding="utf-8") as fh:
        return [line.split("#", 1)[0].strip() for line in fh if line.split("#", 1)[0].strip()]
