"""The one place a SparkSession is built: Delta extension and catalog, Arrow, local defaults.

``configure_builder`` composes like ``delta.configure_spark_with_delta_pip``: it takes a builder and
returns it, so tests and jobs add their own settings around it. Delta's jars come from the folder
``make setup`` fills from Maven Central (``spark.jars_dir``, read from the release home), so no
session touches the network.

No silent hang: before the session starts, :func:`build_spark` refuses tasks that ask for a GPU on a
local master (:func:`vidrec.pipeline.preflight.check_schedulable`); once it runs, a watchdog
(:func:`watch_first_job`) ends the process with exit code 2 when no task of the first Spark job has
started within ``spark.schedule_timeout_s`` (a cluster that cannot offer what the tasks ask for).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession

from vidrec.config import Config, ConfigError, find_home, scheduling
from vidrec.config import paths as release

log = logging.getLogger(__name__)

DELTA_JAR_PREFIXES = ("delta-spark_", "delta-storage-")


def delta_jars(jars_dir: str | Path) -> list[str]:
    """Return the Delta jar files in ``jars_dir`` (relative paths are from the release home).

    Raises
    ------
    ConfigError
        When the folder or one of the two jars is missing, naming the absolute folder and what to do.
    """
    home = find_home()
    folder = Path(release.resolve(str(jars_dir), home, "spark.jars_dir"))
    jars = sorted(str(p) for p in folder.glob("*.jar")) if folder.is_dir() else []
    for prefix in DELTA_JAR_PREFIXES:
        if not any(Path(j).name.startswith(prefix) for j in jars):
            advice = release.setup_advice(home, "Delta's jars (delta-spark_*.jar, delta-storage-*.jar)")
            raise ConfigError(
                f"spark.jars_dir: no {prefix}*.jar in {folder}; {advice}, or set spark.jars_dir to '' "
                "when spark-submit (--jars/--packages) or the cluster provides them"
            )
    return jars


#: Delta state-reconstruction partitions of an embedded (local) session.
LOCAL_SNAPSHOT_PARTITIONS = "2"

#: Generated classes the JVM keeps compiled (``spark.sql.codegen.cache.maxEntries``; Spark's default
#: is 100). A night plans about 2,000 distinct pieces of generated code, many of them again and again
#: (every Delta read and commit, every model's lists): with 100 entries they are evicted and Janino
#: compiles them anew. The demo's next night compiled 3,176 classes with the default and 1,960 with
#: this (about 18 s of the driver's compiling less; docs/performance.md).
CODEGEN_CACHE_ENTRIES = "4000"


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
        .config("spark.sql.codegen.cache.maxEntries", CODEGEN_CACHE_ENTRIES)
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
            # Delta rebuilds a table's state from its log in 50 partitions by default: on a 2-core
            # embedded session that is 50 tasks per table read. 2 measured 25-30% faster on a
            # Delta-heavy loop here (docs/performance.md); spark.extra may override it.
            .config("spark.databricks.delta.snapshotPartitions", LOCAL_SNAPSHOT_PARTITIONS)
        )
    if sc.jars_dir:
        builder = builder.config("spark.jars", ",".join(delta_jars(sc.jars_dir)))
    for key, value in sc.extra.items():
        builder = builder.config(key, value)
    return builder


def submitted_settings(conf: Config) -> tuple[str, dict[str, str]]:
    """The master and Spark settings a session for ``conf`` will get, known before it starts.

    Under ``spark-submit``: its ``--master`` and ``--conf`` (read from the launcher's JVM, no context
    is started), then ``spark.extra`` over them as :func:`configure_builder` applies it. Otherwise:
    ``spark.master`` (default ``local[*]``) and ``spark.extra``.
    """
    if under_spark_submit():
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()  # connects to spark-submit's JVM: its SparkConf, no context
        given = dict(SparkConf().getAll())
        master = given.get("spark.master", "")
    else:
        given = {}
        master = conf.spark.master or "local[*]"
    return master, {**given, **conf.spark.extra}


def build_spark(conf: Config) -> SparkSession:
    """Build (or get) the SparkSession for ``conf``, set its checkpoint folder and watch its first job.

    Raises
    ------
    ConfigError
        Before the session starts, when its tasks could never be scheduled (GPU requests on a local
        master); after, when the checkpoint folder or warehouse cannot be reached.
    """
    from vidrec.pipeline.preflight import check_schedulable

    master, settings = submitted_settings(conf)
    check_schedulable(master, settings)
    spark = configure_builder(SparkSession.builder, conf).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    quiet_loggers(spark)
    watch_first_job(spark, conf.spark.schedule_timeout_s)
    if under_spark_submit():
        ship_wheels_to_local_workers(spark)
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


#: Spark loggers set to ERROR, each for a warning the pipeline causes on purpose at every use:
#: ``MapPartitionsRDD`` warns whenever a locally checkpointed frame is unpersisted, which
#: :func:`vidrec.serving.hybrid.common.release` does after the frame's last use to free its blocks
#: (12-18 two-line warnings a night otherwise).
QUIET_LOGGERS = ("org.apache.spark.rdd.MapPartitionsRDD",)


def quiet_loggers(spark: SparkSession) -> None:
    """Set each of :data:`QUIET_LOGGERS` to ERROR in the driver's log4j."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    error = jvm.org.apache.logging.log4j.Level.ERROR
    for name in QUIET_LOGGERS:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, error)


def ship_wheels_to_local_workers(spark: SparkSession) -> list[str]:
    """Put the wheels of ``spark-submit --py-files`` on a local master's Python workers' path.

    ``spark-submit`` puts a ``.whl`` on the driver's ``PYTHONPATH``, but PySpark adds only ``.zip``,
    ``.egg`` and ``.jar`` files to its Python workers' path. A cluster's executors get the wheel from
    ``spark.executorEnv.PYTHONPATH`` (``conf/cluster-cpu.yaml``), a path relative to the executor's
    folder, which a local master's workers do not run in: without this every Python UDF of a
    ``local[N]`` spark-submit fails with "No module named 'vidrec'". Each wheel (a zip file) is
    copied under a ``.zip`` name and added with ``addPyFile``. Returns the files added.
    """
    sc = spark.sparkContext
    if scheduling.local_task_slots(sc.master) is None:
        return []
    import shutil
    import tempfile
    from urllib.parse import urlparse

    added = []
    for uri in (sc.getConf().get("spark.submit.pyFiles") or "").split(","):
        path = urlparse(uri).path if uri.startswith("file:") else uri
        if not path.endswith(".whl") or not os.path.isfile(path):
            continue
        target = Path(tempfile.mkdtemp(prefix="vidrec-pyfiles-")) / (Path(path).stem + ".zip")
        shutil.copyfile(path, target)
        sc.addPyFile(str(target))
        added.append(str(target))
        log.info("spark-submit on %s: %s shipped to the Python workers as %s", sc.master, path, target.name)
    return added


def _exit_stuck(message: str) -> None:
    """The watchdog's default: say why on stderr and in the log, then end the process with exit code 2
    (nothing was written: no task ever ran)."""
    log.error("%s", message)
    print(f"vidrec: configuration error: {message}", file=sys.stderr, flush=True)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(2)


def stuck_message(timeout_s: float, master: str, settings: dict[str, str]) -> str:
    """Why the first job's tasks never started, naming the setting at fault and what to use instead."""
    head = (
        f"no task of the first Spark job started within {timeout_s:g} s (spark.schedule_timeout_s) on "
        f"master {master}"
    )
    requests = scheduling.task_resource_requests(settings)
    if requests:
        asked = ", ".join(f"{k}={v}" for k, v in requests.items())
        names = ", ".join(sorted({scheduling.resource_name(k) for k in requests}))
        return (
            f"{head}: every task asks for {asked} and no executor offers a {names}; "
            f"{scheduling.CPU_LAYER_ADVICE}"
        )
    return (
        f"{head}: no executor could take a task (none registered, or none with the cores and memory "
        "asked for: spark.executor.cores/memory, spark.task.cpus); if executors are only slow to come, "
        "raise spark.schedule_timeout_s (0 turns the watchdog off)"
    )


def watch_first_job(
    spark: SparkSession,
    timeout_s: float,
    on_stuck: Callable[[str], None] | None = None,
    poll_s: float = 1.0,
) -> threading.Thread | None:
    """Start a daemon thread that calls ``on_stuck(message)`` (default: exit code 2) when the first
    Spark job submitted after this call has a stage whose tasks have not started after ``timeout_s``.

    The clock starts when the job's first stage is submitted; the thread ends as soon as any task
    starts (or the stage goes away), so it costs nothing afterwards. ``timeout_s`` 0: no watchdog.
    """
    if timeout_s <= 0:
        return None
    sc = spark.sparkContext
    tracker = sc.statusTracker()
    before = set(tracker.getActiveStageIds())
    jobs_before = set(tracker.getJobIdsForGroup())
    master = sc.master or "?"
    settings = {str(k): str(v) for k, v in sc.getConf().getAll()}
    handler = on_stuck or _exit_stuck

    def started(stage_ids: list[int]) -> bool:
        for sid in stage_ids:
            info = tracker.getStageInfo(sid)
            if info is not None and info.numActiveTasks + info.numCompletedTasks + info.numFailedTasks > 0:
                return True
        return False

    def finished_job() -> bool:
        """A job submitted since the call has ended (between two polls): its tasks ran, or it failed."""
        for jid in set(tracker.getJobIdsForGroup()) - jobs_before:
            info = tracker.getJobInfo(jid)
            if info is not None and info.status in ("SUCCEEDED", "FAILED"):
                return True
        return False

    def watch() -> None:
        first_seen: float | None = None
        try:
            while True:
                stages = [s for s in tracker.getActiveStageIds() if s not in before]
                now = time.monotonic()
                if not stages and finished_job():
                    return
                if stages:
                    if started(stages):
                        return
                    first_seen = now if first_seen is None else first_seen
                    if now - first_seen >= timeout_s:
                        handler(stuck_message(timeout_s, master, settings))
                        return
                elif first_seen is not None:  # the stage ended: its tasks ran (or it failed by itself)
                    return
                time.sleep(poll_s)
        except Exception as exc:  # the context stopped: nothing left to watch
            log.debug("first-job watchdog ended: %s", exc)

    thread = threading.Thread(target=watch, name="vidrec-first-job-watchdog", daemon=True)
    thread.start()
    return thread
