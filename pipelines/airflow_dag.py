"""Airflow DAG ``vidrec_nightly``: the nightly pipeline for each day, through ``spark-submit``.

One task per day: ``SparkSubmitOperator`` runs ``jobs/nightly.py --run-date {{ ds }}`` with the project
shipped as a wheel (README "On a cluster", "Scheduling"). The command line is built by
:func:`spark_submit_args`, a pure function that needs no Airflow, so the test suite checks it (and that
``pipelines/vidrec.cron`` submits the same thing) without Airflow installed; Airflow is not a
dependency of the project, and this file only defines the DAG where Airflow is importable.

Schedule and catch-up. A run for data interval D (``{{ ds }}`` = D) starts once D has ended, at 02:30
UTC the next day, so late events of D have landed. The schedule is a ``CronDataIntervalTimetable``, not a
plain cron string: Airflow 3 reads a cron string as a trigger timetable, whose ``{{ ds }}`` would be the
day the run starts (the nightly of a day 2.5 hours old). ``catchup=True`` with ``max_active_runs=1`` and
``depends_on_past=True``: after an outage, or when the DAG is switched on with a ``start_date`` in the
past, Airflow runs every missed day, oldest first, one at a time, and stops at the first failed day
(the nightly of D builds on D-1's indexes and tables, so order matters). A failed night is rolled back
by the job itself (README "Reliability"); clearing it in Airflow reruns it, and the following days
follow. An explicit range: ``airflow backfill create --dag-id vidrec_nightly --from-date 2026-03-01
--to-date 2026-03-31`` (Airflow 2: ``airflow dags backfill -s ... -e ... vidrec_nightly``), or
without Airflow ``pipelines/backfill.py`` over the same range (one ``spark-submit`` for all dates).

Retries: 2, 20 minutes apart (a lost executor, a throttled object store); a retry reruns the whole
nightly of that date, which skips events already ingested.
SLA: the day's recommendations are expected by 06:30 UTC, 4 hours after the start; a miss is
reported to the SLA callback (Airflow 2; Airflow 3 dropped SLAs in favour of deadline alerts, so the
DAG sets none there).

Deployment settings come from the environment of the Airflow workers (``VIDREC_*`` below): where the
release is unpacked (wheel, jobs, conf), the raw landing folder (``{run_date}`` is replaced by the
run's date), the warehouse and the environment file (``conf/cluster-cpu.yaml`` by default, which runs
on any cluster; ``conf/cluster.yaml`` where the executors have GPUs). The Spark master and deploy mode
come from the Airflow connection ``VIDREC_SPARK_CONN_ID`` (default ``spark_default``). Before
``spark-submit`` starts, the task checks that the release holds every file the command names
(:func:`check_release`); a missing one fails the try at once, without retries, naming its absolute path.
Exit code 2 of the nightly (bad flags, configuration or paths; nothing written), exit code 4 (a
malformed warehouse lease) and exit code 6 (the run finished, but the publish gate held the previous
lists because the served algorithm's quality dropped: a rerun would hold again) also fail without
retries; exit code 1 (a stage failed, rolled back) and 3 (the warehouse is busy: another writer holds
its lease) are retried.
Tested with a real Airflow 3.1.8 and apache-airflow-providers-apache-spark 6.3.4 (``tests/test_airflow.py``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DAG_ID = "vidrec_nightly"
SCHEDULE = "30 2 * * *"  # 02:30 UTC: the run for the data interval that ended at 00:00
RETRIES = 2
RETRY_DELAY = dt.timedelta(minutes=20)
SLA = dt.timedelta(hours=4)
DELTA_VERSION = "4.0.1"
SCALA_VERSION = "2.13"
WHEEL = "vidrec-0.1.0-py3-none-any.whl"


@dataclass(frozen=True)
class SubmitSettings:
    """Where the release and the data live; every path is as seen by the machine running ``spark-submit``.

    Attributes
    ----------
    home : str
        The unpacked release: ``dist/<wheel>``, ``jobs/``, ``conf/`` (and ``.cache/jars`` with Delta's jars).
    raw : str
        Raw landing folder of a day; ``{run_date}`` is replaced by the run date.
    warehouse : str or None
        Warehouse root; None: the ``warehouse`` of the environment file.
    conf_file : str
        Environment file, relative to ``home`` (``conf/cluster-cpu.yaml``; ``conf/cluster.yaml`` for GPUs).
    driver_memory : str
    spark_conf : mapping
        Extra ``--conf`` settings (the rest lives in the environment file's ``spark.extra``).
    """

    home: str = "/opt/vidrec"
    raw: str = "s3a://my-bucket/vidrec/raw/{run_date}"
    warehouse: str | None = None
    conf_file: str = "conf/cluster-cpu.yaml"
    driver_memory: str = "8g"
    spark_conf: Mapping[str, str] = field(default_factory=dict)

    def path(self, relative: str) -> str:
        """``relative`` under :attr:`home` (unchanged when absolute, or when ``home`` is empty: the
        caller's folder, as in ``pipelines/vidrec.cron``, which runs from the release home)."""
        if not self.home or relative.startswith("/"):
            return relative
        return f"{self.home.rstrip('/')}/{relative}"

    @property
    def jars(self) -> list[str]:
        """Delta's jars as ``make setup`` caches them (``--jars``; ``--packages`` needs network)."""
        return [
            self.path(f".cache/jars/delta-spark_{SCALA_VERSION}-{DELTA_VERSION}.jar"),
            self.path(f".cache/jars/delta-storage-{DELTA_VERSION}.jar"),
        ]

    @property
    def py_files(self) -> list[str]:
        """The project wheel (``pip wheel --no-deps -w dist .``)."""
        return [self.path(f"dist/{WHEEL}")]

    @property
    def files(self) -> list[str]:
        """Files every executor gets in its working folder: the GPU discovery script."""
        return [self.path("conf/gpu_discovery.sh")]


def nightly_application_args(settings: SubmitSettings, run_date: str) -> list[str]:
    """Arguments of ``jobs/nightly.py`` for ``run_date`` (a date or the template ``{{ ds }}``)."""
    args = ["--raw", settings.raw.replace("{run_date}", run_date), "--run-date", run_date]
    if settings.warehouse:
        args += ["--warehouse", settings.warehouse]
    return [*args, "--conf", settings.path(settings.conf_file)]


def spark_submit_args(settings: SubmitSettings, run_date: str) -> list[str]:
    """The ``spark-submit`` flags, application and arguments of the nightly for ``run_date``.

    Without ``--master``/``--deploy-mode``: those come from the Airflow connection, or the caller adds
    them (``pipelines/vidrec.cron``, the README). The flags are in the order the Spark provider's
    ``SparkSubmitHook`` writes them, so its command is ``spark-submit --master <connection>`` followed
    by exactly this list (``tests/test_airflow.py`` checks it against a real Airflow).

    Returns
    -------
    list of str
        ``[--conf k=v ...] --files ... --py-files ... --jars ... --driver-memory ... --name ...
        <home>/jobs/nightly.py <application args>``.
    """
    args: list[str] = []
    for key, value in sorted(settings.spark_conf.items()):
        args += ["--conf", f"{key}={value}"]
    args += [
        "--files",
        ",".join(settings.files),
        "--py-files",
        ",".join(settings.py_files),
        "--jars",
        ",".join(settings.jars),
        "--driver-memory",
        settings.driver_memory,
        "--name",
        f"vidrec-nightly-{run_date}",
    ]
    return [*args, settings.path("jobs/nightly.py"), *nightly_application_args(settings, run_date)]


class ReleaseError(ValueError):
    """The release folder lacks a file the submission names (one line, absolute paths)."""


def release_problems(settings: SubmitSettings) -> list[str]:
    """What the nightly's ``spark-submit`` needs from the release and does not find there.

    Returns
    -------
    list of str
        One entry per problem, each naming an absolute path: ``VIDREC_HOME`` without ``conf/``, a
        missing wheel, Delta jar, job script, discovery script or environment file. Empty: all there.
    """
    if "://" in settings.home:
        return []  # a remote release (e.g. an HDFS path): spark-submit fetches it
    home = os.path.abspath(settings.home or ".")
    if not os.path.isdir(os.path.join(home, "conf")):
        return [f"VIDREC_HOME={settings.home or '.'}: {home} holds no conf/ folder (not a release home)"]
    wanted = [
        ("the wheel (pip wheel --no-deps -w dist .)", settings.py_files),
        ("a Delta jar", settings.jars),
        ("the job", [settings.path("jobs/nightly.py")]),
        ("the GPU discovery script", settings.files),
        ("the environment file (VIDREC_CONF)", [settings.path(settings.conf_file)]),
    ]
    return [
        f"{what}: no file at {os.path.abspath(os.path.join(home, path))}"
        for what, files in wanted
        for path in files
        if not os.path.isfile(os.path.join(home, path))
    ]


def check_release(settings: SubmitSettings) -> None:
    """Raise :class:`ReleaseError` (one line) when :func:`release_problems` finds any."""
    problems = release_problems(settings)
    if problems:
        raise ReleaseError("vidrec release incomplete: " + "; ".join(problems))


def operator_kwargs(settings: SubmitSettings, run_date: str = "{{ ds }}") -> dict[str, Any]:
    """``SparkSubmitOperator`` keywords equal to :func:`spark_submit_args` (its hook rebuilds the flags)."""
    return {
        "application": settings.path("jobs/nightly.py"),
        "application_args": nightly_application_args(settings, run_date),
        "name": f"vidrec-nightly-{run_date}",
        "driver_memory": settings.driver_memory,
        "jars": ",".join(settings.jars),
        "py_files": ",".join(settings.py_files),
        "files": ",".join(settings.files),
        "conf": dict(sorted(settings.spark_conf.items())),
    }


def settings_from_env(env: Mapping[str, str] | None = None) -> SubmitSettings:
    """:class:`SubmitSettings` from ``VIDREC_HOME``, ``VIDREC_RAW``, ``VIDREC_WAREHOUSE``, ``VIDREC_CONF``,
    ``VIDREC_DRIVER_MEMORY`` (each optional)."""
    env = os.environ if env is None else env
    default = SubmitSettings()
    return SubmitSettings(
        home=env.get("VIDREC_HOME", default.home),
        raw=env.get("VIDREC_RAW", default.raw),
        warehouse=env.get("VIDREC_WAREHOUSE") or None,
        conf_file=env.get("VIDREC_CONF", default.conf_file),
        driver_memory=env.get("VIDREC_DRIVER_MEMORY", default.driver_memory),
    )


def default_args(airflow_major: int) -> dict[str, Any]:
    """Task defaults: owner, retries, ordering across days, and the SLA where Airflow still has SLAs."""
    args: dict[str, Any] = {
        "owner": "vidrec",
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "depends_on_past": True,  # day D waits for D-1 to succeed
    }
    if airflow_major < 3:
        args["sla"] = SLA
    return args


#: The nightly's exit code for bad flags, configuration or paths (found before anything is written).
CONFIG_EXIT_CODE = 2
CONFIG_EXIT_MESSAGE = (
    "vidrec nightly exited with code 2: it refused its flags, configuration or paths before writing "
    "anything (its 'configuration error' line above says which); not retried: fix it, then clear the task"
)
#: The nightly's exit code for a malformed warehouse lease (``ops/lease`` holds more than one holder or a
#: bad row: someone edited it by hand). Exit code 3 (busy: another writer holds the lease) is retried.
MALFORMED_LEASE_EXIT_CODE = 4
MALFORMED_LEASE_MESSAGE = (
    "vidrec nightly exited with code 4: the warehouse lease ops/lease is malformed (its error line above "
    "names the rows); not retried: see docs/operations.md (the lease), then clear the task"
)
#: The nightly's exit code when the publish gate held the lists: every stage ran, but tonight's quality of
#: the served algorithm dropped beyond ``publish_gate.tolerance``, so yesterday's lists are served again.
GATE_HELD_EXIT_CODE = 6
GATE_HELD_MESSAGE = (
    "vidrec nightly exited with code 6: the publish gate held the lists (the served algorithm's quality "
    "dropped; its 'publish gate held' line above and ops/runs give the numbers) and yesterday's lists are "
    "served again, re-dated; not retried: see docs/operations.md (the publish gate), then clear the task"
)
#: Exit codes that fail the task at once, without retries: a retry would meet the same refusal.
FINAL_EXIT_MESSAGES = {
    CONFIG_EXIT_CODE: CONFIG_EXIT_MESSAGE,
    MALFORMED_LEASE_EXIT_CODE: MALFORMED_LEASE_MESSAGE,
    GATE_HELD_EXIT_CODE: GATE_HELD_MESSAGE,
}


def submit_exit_code(operator: Any) -> int | None:
    """The exit code of the operator's last ``spark-submit`` (``None`` before one ran)."""
    process = getattr(getattr(operator, "_hook", None), "_submit_sp", None)
    return getattr(process, "returncode", None)


def build_dag(env: Mapping[str, str] | None = None) -> Any:
    """The DAG (imports Airflow and its Spark provider; only called where they are installed)."""
    import airflow
    from airflow import DAG
    from airflow.exceptions import AirflowFailException
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.timetables.interval import CronDataIntervalTimetable

    env = os.environ if env is None else env
    settings = settings_from_env(env)

    def release_ready(context: Any) -> None:
        """Before spark-submit: a release missing a file fails the try at once and without retries."""
        try:
            check_release(settings)
        except ReleaseError as exc:
            raise AirflowFailException(str(exc)) from exc

    class NightlySubmitOperator(SparkSubmitOperator):
        """``SparkSubmitOperator`` whose exit codes 2, 4 and 6 fail the task without retries: the nightly
        refused its flags, configuration or paths (2) or found the warehouse lease malformed (4) before
        writing anything, or its publish gate held the previous lists (6), and a retry would meet the
        same refusal. Exit code 1 (a stage failed and was rolled back) and 3 (another writer holds the
        lease) are retried."""

        def execute(self, context: Any) -> Any:
            try:
                return super().execute(context)
            except Exception as exc:
                final = FINAL_EXIT_MESSAGES.get(submit_exit_code(self) or 0)
                if final is not None:
                    raise AirflowFailException(final) from exc
                raise

    with DAG(
        dag_id=DAG_ID,
        description="vidrec nightly: ingest, matrix, evaluate, recommend, popular, analytics",
        # Explicitly data intervals: Airflow 3 turns a plain cron string into a trigger timetable whose
        # {{ ds }} is the day the run starts, not the day that just ended.
        schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=True,
        max_active_runs=1,
        default_args=default_args(int(airflow.__version__.split(".")[0])),
        tags=["vidrec", "spark"],
    ) as dag:
        NightlySubmitOperator(
            task_id="nightly",
            conn_id=env.get("VIDREC_SPARK_CONN_ID", "spark_default"),
            execution_timeout=dt.timedelta(hours=6),
            pre_execute=release_ready,
            **operator_kwargs(settings),
        )
    return dag


def _airflow_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("airflow.providers.apache.spark") is not None
    except ModuleNotFoundError:
        return False


if _airflow_available():
    dag = build_dag()


def _print_command(argv: Sequence[str] | None = None) -> int:
    """``python pipelines/airflow_dag.py YYYY-MM-DD``: print the spark-submit line of that date."""
    import shlex
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python pipelines/airflow_dag.py YYYY-MM-DD", file=sys.stderr)
        return 2
    print(shlex.join(["spark-submit", *spark_submit_args(settings_from_env(), args[0])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(_print_command())
