"""The DAG in a real Airflow: Apache Airflow 3.1.8 with apache-airflow-providers-apache-spark 6.3.4.

``tests/test_cluster.py`` checks :func:`spark_submit_args` as a pure function; this test checks that the
Airflow an operator installs builds the same command from the DAG. In the Airflow venv of
``pipelines/airflow-venv.sh`` (every package pinned in ``pipelines/airflow-requirements.txt``, apart
from the project's ``.venv`` and lock), a probe:

- loads ``pipelines/`` with ``DagBag``: no import error, the DAG ``vidrec_nightly`` with its catch-up,
  one run at a time, retries and ``depends_on_past``, and a schedule whose ``{{ ds }}`` is the day that
  ended (Airflow 3 reads a plain cron string otherwise: ``{{ ds }}`` would be the day the run starts);
- renders the task for a date and runs the operator's ``execute`` with a ``spark-submit`` on ``PATH``
  that records its arguments: the command the provider's ``SparkSubmitHook`` builds and starts must be
  ``spark-submit --master <connection> `` followed by exactly :func:`spark_submit_args` for that date;
  when ``spark-submit`` exits 1 the task fails to be retried, when it exits 2 it fails without retries;
- runs the task's pre-execute check on a complete release (passes) and on one without its wheel (fails
  without retries, naming the wheel's absolute path).

The venv takes about 3 minutes to install (measured here; reused afterwards, offline), so this runs in
``make test-cluster`` (marked ``cluster``, skipped unless ``VIDREC_TEST_CLUSTER=1``), not ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import dag_module

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_VERSION = "3.1.8"
SPARK_PROVIDER_VERSION = "6.3.4"
RUN_DATE = "2026-03-31"
MASTER = "local[2]"

#: Run with the Airflow venv's interpreter; prints one line ``RESULT <json>`` at the end.
PROBE = r"""
import json, os, sys
from pathlib import Path

import airflow
from airflow.exceptions import AirflowFailException
from airflow.models.dagbag import DagBag
from airflow.providers.apache.spark import __version__ as provider_version
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

run_date, wheel = sys.argv[1], Path(sys.argv[2])
bag = DagBag(dag_folder=os.environ["PIPELINES"], include_examples=False)
out = {"airflow": airflow.__version__, "provider": provider_version,
       "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags)}
dag = bag.dags["vidrec_nightly"]
task = dag.get_task("nightly")
import pendulum
from airflow.timetables.base import DataInterval, TimeRestriction

day = pendulum.parse(run_date, tz="UTC")
last = DataInterval(day.subtract(days=1).add(hours=2, minutes=30), day.add(hours=2, minutes=30))
info = dag.timetable.next_dagrun_info(
    last_automated_data_interval=last, restriction=TimeRestriction(earliest=None, latest=None, catchup=True)
)
out["next_run"] = {"ds": info.logical_date.strftime("%Y-%m-%d"), "run_after": info.run_after.isoformat()}
out["dag"] = {
    "timetable": type(dag.timetable).__name__, "catchup": dag.catchup,
    "max_active_runs": dag.max_active_runs, "tasks": [t.task_id for t in dag.tasks],
    "operator": type(task).__name__, "spark_submit_operator": isinstance(task, SparkSubmitOperator),
    "retries": task.retries, "depends_on_past": task.depends_on_past,
}
context = {"ds": run_date}
task.render_template_fields(context)
out["built"] = task._get_hook()._build_spark_submit_command(task.application)
task._pre_execute_hook(context)  # a complete release: passes
task.execute(context)  # the provider's own path: hook, command, Popen of spark-submit (a recorder)
out["submitted"] = json.loads(Path(os.environ["RECORD"]).read_text())
out["exit_codes"] = {}
for code in (1, 2, 3, 4, 6):  # stage failed, refused its configuration, lease busy, malformed, gate held
    os.environ["RECORD_EXIT"] = str(code)
    try:
        task.execute(context)
        out["exit_codes"][code] = None
    except Exception as exc:
        out["exit_codes"][code] = [type(exc).__name__, isinstance(exc, AirflowFailException), str(exc)]
os.environ["RECORD_EXIT"] = "0"
hidden = wheel.with_name(wheel.name + ".away")
wheel.rename(hidden)
try:
    task._pre_execute_hook(context)
    out["missing_wheel"] = None
except Exception as exc:
    out["missing_wheel"] = [type(exc).__name__, str(exc)]
finally:
    hidden.rename(wheel)
print("RESULT " + json.dumps(out))
"""


def airflow_test(fn: Any) -> Any:
    for mark in (
        pytest.mark.slow,
        pytest.mark.cluster,
        pytest.mark.skipif(
            os.environ.get("VIDREC_TEST_CLUSTER") != "1",
            reason="installs Apache Airflow into .cache/airflow-venv: run `make test-cluster`",
        ),
    ):
        fn = mark(fn)
    return fn


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    """``pipelines/airflow-venv.sh``: installs the pinned Airflow once, then reuses it."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(REPO / "pipelines" / "airflow-venv.sh")], capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"airflow venv ready in {time.perf_counter() - t0:.1f} s")
    return Path(done.stdout.strip().splitlines()[-1])


def _release(root: Path, dag: ModuleType) -> Path:
    """A release folder holding every file the submission names (the jars and wheel as placeholders:
    nothing runs them here)."""
    settings = dag.SubmitSettings(home=str(root), conf_file="conf/cluster-cpu.yaml")
    for path in [*settings.jars, *settings.py_files, *settings.files, settings.path("jobs/nightly.py")]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("placeholder\n")
    for name in ("cluster-cpu.yaml", "cluster.yaml"):
        shutil.copy2(REPO / "conf" / name, root / "conf" / name)
    return root


@airflow_test
def test_real_airflow_loads_the_dag_and_submits_what_spark_submit_args_builds(
    airflow_python: Path, tmp_path: Path
) -> None:
    dag = dag_module()
    home = _release(tmp_path / "release", dag)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv.json"
    recorder = bin_dir / "spark-submit"
    recorder.write_text(
        f"#!{sys.executable}\nimport json, os, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n"
        "sys.exit(int(os.environ.get('RECORD_EXIT', '0')))\n"
    )
    recorder.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDREC_", "AIRFLOW", "PYTHON"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": MASTER}),
            "PIPELINES": str(REPO / "pipelines"),
            "RECORD": str(record),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "VIDREC_HOME": str(home),
            "VIDREC_RAW": "/data/raw/{run_date}",
            "VIDREC_WAREHOUSE": "/data/warehouse",
            "VIDREC_CONF": "conf/cluster-cpu.yaml",
            "VIDREC_DRIVER_MEMORY": "2g",
        }
    )
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    wheel = home / "dist" / dag.WHEEL
    done = subprocess.run(
        [str(airflow_python), str(probe), RUN_DATE, str(wheel)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-4000:]
    out = json.loads(lines[-1][len("RESULT ") :])

    assert (out["airflow"], out["provider"]) == (AIRFLOW_VERSION, SPARK_PROVIDER_VERSION)
    assert out["import_errors"] == {} and dag.DAG_ID in out["dags"]
    # after the run of the day before RUN_DATE: the next one is RUN_DATE's, starting once it has ended
    assert out["next_run"] == {"ds": RUN_DATE, "run_after": "2026-04-01T02:30:00+00:00"}
    assert out["dag"] == {
        "timetable": "CronDataIntervalTimetable",
        "catchup": True,
        "max_active_runs": 1,
        "tasks": ["nightly"],
        "operator": "NightlySubmitOperator",
        "spark_submit_operator": True,
        "retries": dag.RETRIES,
        "depends_on_past": True,
    }
    settings = dag.SubmitSettings(
        home=str(home),
        raw="/data/raw/{run_date}",
        warehouse="/data/warehouse",
        conf_file="conf/cluster-cpu.yaml",
        driver_memory="2g",
    )
    expected = ["--master", MASTER, *dag.spark_submit_args(settings, RUN_DATE)]
    assert out["built"] == ["spark-submit", *expected]
    assert out["submitted"] == expected
    stage_failed, refused = out["exit_codes"]["1"], out["exit_codes"]["2"]
    assert stage_failed[:2] == ["AirflowException", False] and "Error code is: 1" in stage_failed[2]
    assert refused[:2] == ["AirflowFailException", True] and refused[2] == dag.CONFIG_EXIT_MESSAGE
    busy, malformed = out["exit_codes"]["3"], out["exit_codes"]["4"]  # busy: retried; malformed: not
    assert busy[:2] == ["AirflowException", False] and "Error code is: 3" in busy[2]
    assert malformed[:2] == ["AirflowFailException", True] and malformed[2] == dag.MALFORMED_LEASE_MESSAGE
    held = out["exit_codes"]["6"]  # the publish gate held the lists: not retried
    assert held[:2] == ["AirflowFailException", True] and held[2] == dag.GATE_HELD_MESSAGE
    name, message = out["missing_wheel"]
    assert name == "AirflowFailException"  # fails the try without retries: a release is not transient
    assert f"no file at {wheel}" in message and "\n" not in message
