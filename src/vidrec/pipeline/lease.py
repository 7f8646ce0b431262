"""One writer at a time: a lease held in the warehouse itself (``ops/lease``, a one-row Delta table).

Every job that writes a warehouse (the nightly and each stage job, a backfill, ``forget_user``,
``tune``, ``train_deep``) takes the lease before its first write and gives it back when it ends,
failed or not (:func:`hold`). Readers (analysts, notebooks, the serving side) take nothing.

**Atomic across hosts.** The lease is a row, and every change to it is a Delta MERGE whose outcome
depends on the row it read: taking a free lease inserts the row only when there is none; taking over a
stale one updates it only while it still holds the stale holder's ``token``; a heartbeat or a release
touches it only while it holds the job's own ``token``. Delta commits optimistically: two such MERGEs
that read the same version cannot both commit. The second one fails with a concurrent-modification
error (``ConcurrentAppendException``, ``ConcurrentDeleteReadException``...), reads the row again, and
then finds the warehouse busy. So exactly one writer wins, on any file system whose Delta log store
gives mutually exclusive commits (HDFS, ADLS, GCS and local disks do; on S3 configure the DynamoDB
log store for writers on several clusters, see docs/operations.md).

**Heartbeat.** While a job holds the lease, a daemon thread updates ``heartbeat_at`` every
``lease.heartbeat_s`` seconds. A lease whose heartbeat is older than ``lease.stale_after_s`` belongs
to a job that died (killed, host lost): the next job takes it over and logs whose it was. Should a
heartbeat find the lease taken (its job was frozen past the timeout), :meth:`Lease.check` raises
:class:`LeaseLost` and the job stops at its next step, without rolling anything back (the new holder
may already have written).

**Errors** (each with its exit code, :attr:`LeaseError.exit_code`): :class:`WarehouseBusy` (3) names
the warehouse, the holder and since when; :class:`LeaseMalformed` (4) names what is wrong with the
row and how to clear it.

Times are read and written as epoch microseconds (``unix_micros``/``timestamp_micros``), so no time
zone is involved; staleness compares the reader's clock with the holder's, so keep
``lease.stale_after_s`` far above any clock skew between hosts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config.sections import LeaseConf
from vidrec.data import tables

log = logging.getLogger(__name__)

#: The one key of the one-row table.
LEASE_KEY = "warehouse"
COLUMNS = ("lease", "token", "job", "run_id", "host", "pid", "started_at", "heartbeat_at")
_TYPES = {
    "lease": "string",
    "token": "string",
    "job": "string",
    "run_id": "string",
    "host": "string",
    "pid": "bigint",
    "started_at": "timestamp",
    "heartbeat_at": "timestamp",
}
SCHEMA = ", ".join(f"{c} {_TYPES[c]}" for c in COLUMNS)
#: Exit codes of the jobs (0, 1 and 2 are success, stage failed and bad configuration).
EXIT_BUSY = 3
EXIT_MALFORMED = 4


_CONFLICT_NAMES = (
    "DeltaConcurrentModificationException",
    "ConcurrentWriteException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
)


def is_conflict(exc: BaseException) -> bool:
    """True for a Delta commit conflict (another transaction committed first), however it surfaced.

    Delta's Python API raises its own exception classes only once their converter is installed;
    otherwise the same error arrives as a ``Py4JJavaError`` naming ``io.delta.exceptions.<Name>``.
    """
    if type(exc).__name__ in _CONFLICT_NAMES:
        return True
    text = str(exc)
    return any(f"io.delta.exceptions.{n}" in text or f"{n}:" in text[:300] for n in _CONFLICT_NAMES)


class LeaseError(RuntimeError):
    """The lease could not be taken or was lost; ``exit_code`` is the job's exit status."""

    exit_code = EXIT_BUSY


class WarehouseBusy(LeaseError):
    """Another job holds the lease (and its heartbeat is fresh)."""

    def __init__(self, message: str, holder: Holder) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseMalformed(LeaseError):
    """``ops/lease`` holds something other than zero or one well-formed holder row."""

    exit_code = EXIT_MALFORMED


class LeaseLost(LeaseError):
    """Another job took the lease over while this one held it (its heartbeat had gone stale)."""


def _now_us() -> int:
    return time.time_ns() // 1000


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Holder:
    """Who holds the lease: ``token`` is unique to one job run's hold of it."""

    token: str
    job: str
    run_id: str
    host: str
    pid: int
    started_us: int
    heartbeat_us: int

    def describe(self) -> str:
        return (
            f"job '{self.job}' (run {self.run_id}, pid {self.pid} on {self.host}), holding it since "
            f"{_iso(self.started_us)}, last heartbeat {_iso(self.heartbeat_us)}"
        )

    def age_s(self, now_us: int | None = None) -> float:
        """Seconds since the last heartbeat."""
        return ((now_us if now_us is not None else _now_us()) - self.heartbeat_us) / 1e6


def lease_path(warehouse: str) -> str:
    return tables.table_path(warehouse, C.T_LEASE)


def _malformed(warehouse: str, what: str) -> LeaseMalformed:
    path = lease_path(warehouse)
    return LeaseMalformed(
        f"the warehouse lease {tables.catalog_name(C.T_LEASE)} at {path} is malformed: {what}. "
        f"Inspect it with SELECT * FROM delta.`{path}`; when you are sure no job writes the warehouse, "
        f"delete the folder {path} and rerun (the next job creates it again)."
    )


def _folder_names(spark: SparkSession, path: str) -> list[str] | None:
    """The names in folder ``path``, or ``None`` when it does not exist."""
    jvm = spark._jvm
    assert jvm is not None, "the Spark session has no JVM gateway"
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = jpath.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(jpath):
        return None
    return sorted(str(s.getPath().getName()) for s in fs.listStatus(jpath))


def read_holder(spark: SparkSession, warehouse: str) -> Holder | None:
    """The current holder, or ``None`` when the lease is free (or was never taken).

    Raises
    ------
    LeaseMalformed
        When ``ops/lease`` exists but is not a Delta table, lacks a column or has another type, holds
        more than one row, a row with a null field, or a row of another key.
    """
    path = lease_path(warehouse)
    if not DeltaTable.isDeltaTable(spark, path):
        if _folder_names(spark, path) is not None:
            raise _malformed(warehouse, "the folder exists but is not a Delta table")
        return None
    df = spark.read.format("delta").load(path)
    types = dict(df.dtypes)
    bad = [f"{c} ({types.get(c, 'missing')}, want {t})" for c, t in _TYPES.items() if types.get(c) != t]
    if bad:
        raise _malformed(warehouse, "wrong or missing column(s) " + ", ".join(bad))
    rows = df.select(
        *[c for c in COLUMNS if c not in ("started_at", "heartbeat_at")],
        F.unix_micros("started_at").alias("started_us"),
        F.unix_micros("heartbeat_at").alias("heartbeat_us"),
    ).collect()
    if not rows:
        return None
    if len(rows) > 1:
        raise _malformed(warehouse, f"{len(rows)} rows, want at most one")
    row = rows[0].asDict()
    nulls = [k for k, v in row.items() if v is None or (isinstance(v, str) and not v.strip())]
    if nulls:
        raise _malformed(warehouse, "empty field(s) " + ", ".join(nulls))
    if row["lease"] != LEASE_KEY:
        raise _malformed(warehouse, f"key '{row['lease']}', want '{LEASE_KEY}'")
    return Holder(
        token=row["token"],
        job=row["job"],
        run_id=row["run_id"],
        host=row["host"],
        pid=int(row["pid"]),
        started_us=int(row["started_us"]),
        heartbeat_us=int(row["heartbeat_us"]),
    )


#: How long a job waits for another job's creation of ``ops/lease`` to commit.
CREATE_SETTLE_S = 120.0


def _ensure_table(
    spark: SparkSession, warehouse: str, settle_s: float = CREATE_SETTLE_S, poll_s: float = 0.2
) -> None:
    """Create ``ops/lease`` unless it exists; safe when several jobs create it at the same moment.

    While another job creates the table, its folder holds only ``_delta_log`` with no commit yet, and
    Delta refuses a second creation there (``DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION``): such a
    job waits up to ``settle_s`` for the first creation to commit. A folder holding anything else
    that is not a Delta table is malformed, refused at once.
    """
    path = lease_path(warehouse)
    deadline = time.monotonic() + settle_s
    while not DeltaTable.isDeltaTable(spark, path):
        names = _folder_names(spark, path)
        if names not in (None, [], ["_delta_log"]):
            raise _malformed(warehouse, "the folder exists but is not a Delta table")
        try:
            (
                DeltaTable.createIfNotExists(spark)
                .location(path)
                .addColumns(spark.createDataFrame([], SCHEMA).schema)
                .property("delta.enableDeletionVectors", "false")
                .property("delta.enableChangeDataFeed", "false")
                .property("delta.logRetentionDuration", "interval 7 days")
                .execute()
            )
            return
        except Exception as exc:  # another job is creating it at the same moment
            if DeltaTable.isDeltaTable(spark, path):
                log.info("lease: %s was created by another job at once (%s)", path, type(exc).__name__)
                return
            if time.monotonic() >= deadline:
                raise _malformed(
                    warehouse,
                    f"it could not be created in {settle_s:g} s ({_first_line(exc)}); "
                    "another job's creation may have died half-way",
                ) from exc
            time.sleep(poll_s)


def _row(spark: SparkSession, holder: Holder) -> Any:
    return spark.createDataFrame(
        [(LEASE_KEY, holder.token, holder.job, holder.run_id, holder.host, holder.pid)],
        "lease string, token string, job string, run_id string, host string, pid bigint",
    ).select(
        "*",
        F.timestamp_micros(F.lit(holder.started_us)).alias("started_at"),
        F.timestamp_micros(F.lit(holder.heartbeat_us)).alias("heartbeat_at"),
    )


def _metric(result: Any, name: str) -> int:
    rows = result.collect() if result is not None else []
    return int(rows[0][name]) if rows and name in rows[0].asDict() else 0


def _try_insert(spark: SparkSession, warehouse: str, holder: Holder) -> bool:
    """Insert ``holder`` when the table holds no row; True when this commit inserted it."""
    result = (
        DeltaTable.forPath(spark, lease_path(warehouse))
        .alias("t")
        .merge(_row(spark, holder).alias("s"), "t.lease = s.lease")
        .whenNotMatchedInsertAll()
        .execute()
    )
    return _metric(result, "num_inserted_rows") == 1


def _try_replace(spark: SparkSession, warehouse: str, old_token: str, holder: Holder) -> bool:
    """Replace the row of ``old_token`` by ``holder``; True when this commit replaced it."""
    source = _row(spark, holder).withColumn("old_token", F.lit(old_token))
    result = (
        DeltaTable.forPath(spark, lease_path(warehouse))
        .alias("t")
        .merge(source.alias("s"), "t.lease = s.lease AND t.token = s.old_token")
        .whenMatchedUpdate(set={c: f"s.{c}" for c in COLUMNS})
        .execute()
    )
    return _metric(result, "num_updated_rows") == 1


def _try_heartbeat(spark: SparkSession, warehouse: str, holder: Holder, now_us: int) -> bool:
    """Move the heartbeat of ``holder``'s row to ``now_us``; False when the row is not ours any more."""
    source = spark.createDataFrame([(LEASE_KEY, holder.token)], "lease string, token string").select(
        "*", F.timestamp_micros(F.lit(now_us)).alias("heartbeat_at")
    )
    result = (
        DeltaTable.forPath(spark, lease_path(warehouse))
        .alias("t")
        .merge(source.alias("s"), "t.lease = s.lease AND t.token = s.token")
        .whenMatchedUpdate(set={"heartbeat_at": "s.heartbeat_at"})
        .execute()
    )
    return _metric(result, "num_updated_rows") == 1


def _try_delete(spark: SparkSession, warehouse: str, token: str) -> bool:
    source = spark.createDataFrame([(LEASE_KEY, token)], "lease string, token string")
    result = (
        DeltaTable.forPath(spark, lease_path(warehouse))
        .alias("t")
        .merge(source.alias("s"), "t.lease = s.lease AND t.token = s.token")
        .whenMatchedDelete()
        .execute()
    )
    return _metric(result, "num_deleted_rows") == 1


def busy_message(warehouse: str, holder: Holder, waited_s: float | None = None) -> str:
    waited = f" after waiting {waited_s:.0f} s" if waited_s else ""
    return (
        f"warehouse {warehouse} is busy{waited}: its lease is held by {holder.describe()}. "
        "Only one job writes a warehouse at a time; rerun when it has finished, or pass --wait SECONDS "
        "to wait for it."
    )


class Lease:
    """A held lease: heartbeats in a daemon thread until :meth:`release`."""

    def __init__(self, spark: SparkSession, warehouse: str, conf: LeaseConf, holder: Holder) -> None:
        self.spark, self.warehouse, self.conf, self.holder = spark, warehouse, conf, holder
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread = threading.Thread(target=self._beat, name="vidrec-lease-heartbeat", daemon=True)

    @property
    def run_id(self) -> str:
        return self.holder.run_id

    def start(self) -> Lease:
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.conf.heartbeat_s):
            try:
                if not _try_heartbeat(self.spark, self.warehouse, self.holder, _now_us()):
                    self._lost = "its row was taken over or removed"
                    log.error(
                        "lease: LOST the lease of %s (%s); this job stops at its next step",
                        self.warehouse,
                        self._lost,
                    )
                    return
            except Exception as exc:
                if is_conflict(exc):  # a take-over attempt committed first: look again next beat
                    log.warning("lease: a heartbeat of %s met a concurrent commit; next beat", self.warehouse)
                else:  # a storage hiccup: keep trying until the lease would go stale
                    log.warning("lease: heartbeat of %s failed: %s", self.warehouse, _first_line(exc))

    def check(self) -> None:
        """Raise :class:`LeaseLost` when a heartbeat found the lease taken by another job."""
        if self._lost is not None:
            raise LeaseLost(
                f"lost the lease of warehouse {self.warehouse}: {self._lost} (its heartbeat was older "
                f"than lease.stale_after_s = {self.conf.stale_after_s:g} s, so another job took it over)"
            )

    def release(self) -> bool:
        """Stop the heartbeat and delete the row if it is still ours; True when it was."""
        self._stop.set()
        if self._thread.is_alive():  # a heartbeat in flight finishes first
            self._thread.join(timeout=max(600.0, 2 * self.conf.stale_after_s))
        if self._lost is not None:
            return False
        for attempt in range(5):
            try:
                gone = _try_delete(self.spark, self.warehouse, self.holder.token)
                log.info("lease: released %s (held %.1f s)", self.warehouse, self.held_s())
                return gone
            except Exception as exc:
                if not is_conflict(exc):
                    raise
                log.warning(
                    "lease: releasing %s met a concurrent commit, attempt %d", self.warehouse, attempt + 1
                )
                time.sleep(0.5 * (attempt + 1))
        log.error(
            "lease: could not release %s; it goes stale after %g s", self.warehouse, self.conf.stale_after_s
        )
        return False

    def held_s(self) -> float:
        return (_now_us() - self.holder.started_us) / 1e6


def acquire(
    spark: SparkSession,
    warehouse: str,
    job: str,
    conf: LeaseConf,
    wait_s: float = 0.0,
    run_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Take the lease of ``warehouse`` for ``job`` and start its heartbeat.

    Parameters
    ----------
    wait_s : float
        0: refuse at once when another job holds it; more: poll every ``lease.poll_s`` up to this long.
    run_id : str, optional
        The job's run id (recorded in the holder row); default a fresh 12-hex id.

    Raises
    ------
    WarehouseBusy
        When the lease is held by a live job (after ``wait_s``).
    LeaseMalformed
        When ``ops/lease`` is not a well-formed lease table.
    """
    start = time.monotonic()
    _ensure_table(spark, warehouse)
    while True:
        now = _now_us()
        mine = Holder(
            token=uuid.uuid4().hex,
            job=job,
            run_id=run_id or uuid.uuid4().hex[:12],
            host=socket.gethostname(),
            pid=os.getpid(),
            started_us=now,
            heartbeat_us=now,
        )
        current = read_holder(spark, warehouse)
        try:
            if current is None:
                if _try_insert(spark, warehouse, mine):
                    log.info("lease: %s taken by job '%s' (run %s)", warehouse, job, mine.run_id)
                    return Lease(spark, warehouse, conf, mine).start()
            elif current.age_s(now) > conf.stale_after_s:
                if _try_replace(spark, warehouse, current.token, mine):
                    log.warning(
                        "lease: took over the STALE lease of %s: no heartbeat for %.0f s "
                        "(> lease.stale_after_s %g s) from %s",
                        warehouse,
                        current.age_s(now),
                        conf.stale_after_s,
                        current.describe(),
                    )
                    return Lease(spark, warehouse, conf, mine).start()
        except Exception as exc:
            if not is_conflict(exc):
                raise
            log.info("lease: another job committed to %s first; reading the lease again", warehouse)
            continue
        holder = read_holder(spark, warehouse)
        if holder is None:
            continue  # released between our read and our commit: try again
        waited = time.monotonic() - start
        if waited >= wait_s:
            raise WarehouseBusy(busy_message(warehouse, holder, waited if wait_s else None), holder)
        log.info("lease: %s is busy (%s); waiting", warehouse, holder.describe())
        sleep(min(conf.poll_s, max(wait_s - waited, 0.01)))


@contextmanager
def hold(
    spark: SparkSession,
    warehouse: str,
    job: str,
    conf: LeaseConf,
    wait_s: float = 0.0,
    run_id: str | None = None,
) -> Iterator[Lease]:
    """``with hold(...) as lease:``: the lease for the block, released when it ends (also on failure)."""
    lease = acquire(spark, warehouse, job, conf, wait_s, run_id)
    try:
        yield lease
    finally:
        lease.release()
