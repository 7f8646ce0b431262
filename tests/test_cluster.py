"""The project on a real multi-process Spark cluster, and the deployment files around it.

Cheap checks (the normal suite): ``conf/cluster-cpu.yaml`` and its GPU layer ``conf/cluster.yaml`` load,
``conf/gpu_discovery.sh`` prints the JSON Spark expects (under a stand-in ``nvidia-smi`` that prints what
the real one prints), and the Airflow DAG and the cron line submit the same command (the real Airflow's
command: ``tests/test_airflow.py``).

The cluster run (``make test-cluster``; marked ``cluster``, skipped unless ``VIDREC_TEST_CLUSTER=1``):
a Spark standalone master and two workers (one core each) on loopback, started from the pyspark
installation's ``bin/spark-class``; the workers offer one "GPU" each through ``conf/gpu_discovery.sh``,
so ``conf/cluster.yaml``'s GPU scheduling settings are used as on a GPU cluster. A release folder
outside the source tree holds what a deployment holds (the wheel, a copy of ``jobs/nightly.py``,
``conf/cluster.yaml`` and the ``conf/cluster-cpu.yaml`` it extends, plus a ``cluster.local.yaml`` layer
sizing it for this machine, Delta's jars and the native BLAS), and ``spark-submit`` runs the command
``pipelines/airflow_dag.py`` builds. Driver and executors run an
interpreter that sees the pinned stack but not the project (a venv whose only entry is the shared
site-packages, without its ``.pth`` files, so the editable install is invisible): vidrec can only come
from the shipped wheel. The nightly trains ``ncf`` with TorchDistributor in non-local mode, one gloo
process in a barrier task on each executor. Every process the cluster starts carries a marker in its
environment; teardown stops the daemons and then looks for any process still carrying it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import uuid
import venv
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import dag_module

from vidrec import constants as C
from vidrec.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
DISCOVERY = REPO / "conf" / "gpu_discovery.sh"
CRON_FILE = REPO / "pipelines" / "vidrec.cron"
RUN_DATE = dt.date(2026, 3, 31)
MARKER = "VIDREC_CLUSTER_TEST"
CLUSTER_MODELS = [C.ALGO_POPULARITY, C.ALGO_ALS, C.ALGO_NCF]
TOP_N = 10


# --- conf/cluster.yaml -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(p.name for p in CONF_DIR.glob("*.yaml") if ".local." not in p.name))
def test_every_conf_file_loads(path: str) -> None:
    conf = load_config(CONF_DIR / path)
    assert conf.warehouse


def test_cluster_cpu_yaml_asks_for_no_gpu() -> None:
    conf = load_config(CONF_DIR / "cluster-cpu.yaml")
    assert conf.deep.launch.use_gpu is False and conf.deep.launch.local_mode is False
    assert not any(".resource." in key for key in conf.spark.extra)
    assert conf.spark.master is None and conf.spark.jars_dir == ""
    assert conf.spark.extra["spark.executorEnv.PYTHONPATH"] == dag_module().WHEEL
    assert conf.spark.extra["spark.dynamicAllocation.enabled"] == "false"


def test_cluster_yaml_is_the_cpu_layer_plus_gpus() -> None:
    """conf/cluster.yaml extends conf/cluster-cpu.yaml: everything but the GPU settings is shared."""
    assert yaml.safe_load((CONF_DIR / "cluster.yaml").read_text())["extends"] == "cluster-cpu.yaml"
    cpu = load_config(CONF_DIR / "cluster-cpu.yaml").to_dict()
    gpu = load_config(CONF_DIR / "cluster.yaml").to_dict()
    gpu_only = {k: v for k, v in gpu["spark"]["extra"].items() if ".resource.gpu." in k}
    assert {k: v for k, v in gpu["spark"]["extra"].items() if k not in gpu_only} == cpu["spark"]["extra"]
    assert sorted(gpu_only) == [
        "spark.executor.resource.gpu.amount",
        "spark.executor.resource.gpu.discoveryScript",
        "spark.task.resource.gpu.amount",
    ]
    for section in ("warehouse", "als", "recommend", "models", "hybrid"):
        assert gpu[section] == cpu[section], section


def test_cluster_yaml_runs_training_on_executor_gpus() -> None:
    conf = load_config(CONF_DIR / "cluster.yaml")
    launch = conf.deep.launch
    assert (launch.local_mode, launch.use_gpu) == (False, True)
    extra = conf.spark.extra
    assert conf.spark.master is None and conf.spark.jars_dir == ""
    assert int(extra["spark.task.resource.gpu.amount"]) >= 1  # TorchDistributor reads it as an int
    assert extra["spark.executor.resource.gpu.discoveryScript"].endswith("gpu_discovery.sh")
    assert extra["spark.executorEnv.PYTHONPATH"] == dag_module().WHEEL
    assert str(conf.warehouse).startswith(("s3a://", "abfss://", "gs://"))
    # Barrier stages fail under dynamic allocation; one training process per executor GPU.
    assert extra["spark.dynamicAllocation.enabled"] == "false"
    assert int(extra["spark.executor.instances"]) * int(extra["spark.executor.resource.gpu.amount"]) == int(
        launch.num_processes
    )


# --- conf/gpu_discovery.sh -------------------------------------------------------------------------


def _fake_nvidia_smi(folder: Path, output: str, status: int = 0) -> Path:
    """An ``nvidia-smi`` that prints ``output`` for ``--query-gpu=index --format=csv,noheader``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "--query-gpu=index" ] && [ "$2" = "--format=csv,noheader" ] || '
        '{ echo "unexpected arguments: $*" >&2; exit 9; }\n'
        f"printf '{output}'\nexit {status}\n"
    )
    script.chmod(0o755)
    return folder


def _discover(path_dirs: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": os.pathsep.join([*map(str, path_dirs), "/usr/bin", "/bin"])}
    return subprocess.run([str(DISCOVERY)], env=env, capture_output=True, text=True, timeout=30)


def test_gpu_discovery_prints_the_json_spark_expects(tmp_path: Path) -> None:
    done = _discover([_fake_nvidia_smi(tmp_path / "bin", "0\\n1\\n3\\n")])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"name": "gpu", "addresses": ["0", "1", "3"]}


def test_gpu_discovery_with_no_gpu_lists_none(tmp_path: Path) -> None:
    done = _discover([_fake_nvidia_smi(tmp_path / "bin", "")])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"name": "gpu", "addresses": []}


def test_gpu_discovery_fails_clearly(tmp_path: Path) -> None:
    missing = _discover([tmp_path / "empty"])
    assert missing.returncode != 0 and "nvidia-smi not found" in missing.stderr
    broken = _discover([_fake_nvidia_smi(tmp_path / "broken", "NVIDIA-SMI has failed\\n", status=6)])
    assert broken.returncode != 0 and "failed" in broken.stderr and not broken.stdout
    garbage = _discover([_fake_nvidia_smi(tmp_path / "garbage", "0\\nNo devices were found\\n")])
    assert garbage.returncode != 0 and "No devices were found" in garbage.stderr and not garbage.stdout


# --- pipelines/: the Airflow DAG and the cron line ---------------------------------------------------


def test_dag_builds_the_documented_spark_submit() -> None:
    dag = dag_module()
    settings = dag.SubmitSettings(home="/opt/vidrec", raw="s3a://b/raw/{run_date}", warehouse="s3a://b/wh")
    assert dag.spark_submit_args(settings, "{{ ds }}") == [
        "--files",
        "/opt/vidrec/conf/gpu_discovery.sh",
        "--py-files",
        "/opt/vidrec/dist/vidrec-0.1.0-py3-none-any.whl",
        "--jars",
        "/opt/vidrec/.cache/jars/delta-spark_2.13-4.0.1.jar,/opt/vidrec/.cache/jars/delta-storage-4.0.1.jar",
        "--driver-memory",
        "8g",
        "--name",
        "vidrec-nightly-{{ ds }}",
        "/opt/vidrec/jobs/nightly.py",
        "--raw",
        "s3a://b/raw/{{ ds }}",
        "--run-date",
        "{{ ds }}",
        "--warehouse",
        "s3a://b/wh",
        "--conf",
        "/opt/vidrec/conf/cluster-cpu.yaml",
    ]
    gpu = dag.SubmitSettings(home="/opt/vidrec", conf_file="conf/cluster.yaml")
    assert dag.spark_submit_args(gpu, "2026-03-31")[-2:] == ["--conf", "/opt/vidrec/conf/cluster.yaml"]
    absolute = dag.SubmitSettings(home="/opt/vidrec", conf_file="/etc/vidrec/site.yaml")
    assert dag.spark_submit_args(absolute, "2026-03-31")[-2:] == ["--conf", "/etc/vidrec/site.yaml"]


def test_dag_operator_arguments_equal_the_command_line() -> None:
    """SparkSubmitOperator's hook turns these keywords back into flags: they must say the same."""
    dag = dag_module()
    settings = dag.SubmitSettings(spark_conf={"spark.eventLog.enabled": "true"})
    kw = dag.operator_kwargs(settings, "2026-03-31")
    rebuilt = [item for key, value in kw["conf"].items() for item in ("--conf", f"{key}={value}")]
    rebuilt += ["--files", kw["files"], "--py-files", kw["py_files"], "--jars", kw["jars"]]
    rebuilt += ["--driver-memory", kw["driver_memory"], "--name", kw["name"]]
    rebuilt += [kw["application"], *kw["application_args"]]
    assert rebuilt == dag.spark_submit_args(settings, "2026-03-31")


def test_dag_schedule_retries_and_catchup() -> None:
    dag = dag_module()
    assert dag.default_args(2)["sla"] == dt.timedelta(hours=4)
    assert "sla" not in dag.default_args(3)  # Airflow 3 removed SLAs
    assert dag.default_args(3)["retries"] == 2 and dag.default_args(3)["depends_on_past"] is True
    # build_dag itself needs Airflow: check the DAG arguments it passes, from the source.
    import ast

    tree = ast.parse((REPO / "pipelines" / "airflow_dag.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DAG"]
    assert len(calls) == 1
    kwargs = {k.arg: k.value for k in calls[0].keywords}
    assert ast.literal_eval(kwargs["catchup"]) is True
    assert ast.literal_eval(kwargs["max_active_runs"]) == 1
    # a data-interval timetable over SCHEDULE ({{ ds }} = the day that ended; tests/test_airflow.py runs it)
    schedule = kwargs["schedule"]
    assert isinstance(schedule, ast.Call) and getattr(schedule.func, "id", "") == "CronDataIntervalTimetable"
    assert isinstance(schedule.args[0], ast.Name) and schedule.args[0].id == "SCHEDULE"
    # one task, of a SparkSubmitOperator subclass that does not retry exit code 2
    (cls,) = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "NightlySubmitOperator"]
    assert [getattr(b, "id", "") for b in cls.bases] == ["SparkSubmitOperator"]
    operators = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") in ("SparkSubmitOperator", cls.name)
    ]
    assert len(operators) == 1


def _cron() -> tuple[dict[str, str], list[str], list[str]]:
    """The cron file's variables, active lines and commented-out job lines."""
    env: dict[str, str] = {}
    active: list[str] = []
    commented: list[str] = []
    for line in CRON_FILE.read_text().splitlines():
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            body = text.lstrip("#").strip()
            if len(body.split()) > 5 and all(re.fullmatch(r"[\d*/,-]+", f) for f in body.split()[:5]):
                commented.append(body)
            continue
        name, eq, value = text.partition("=")
        if eq and " " not in name:
            env[name] = value
        else:
            active.append(text)
    return env, active, commented


def _run_cron_command(line: str, env: Mapping[str, str], tmp_path: Path) -> list[str]:
    """Run a cron line's command as cron would (its SHELL, ``%`` unescaped), with ``spark-submit`` a
    recorder of its arguments; return them."""
    fields = line.split(None, 5)
    command = fields[5]
    assert "%" not in command.replace("\\%", ""), "a bare % in a cron command is a newline"
    command = command.replace("\\%", "%")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "argv.json"
    recorder = bin_dir / "spark-submit"
    recorder.write_text(
        f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n"
    )
    recorder.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    run_env = {**env, "VIDREC_HOME": str(home), "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"}
    done = subprocess.run(
        [env.get("SHELL", "/bin/sh"), "-c", command], env=run_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(record.read_text())


def test_cron_line_submits_what_the_dag_builds(tmp_path: Path) -> None:
    dag = dag_module()
    env, active, commented = _cron()
    assert len(active) == 1 and env.get("CRON_TZ") == "UTC"
    assert active[0].split()[:5] == dag.SCHEDULE.split()
    before = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    argv = _run_cron_command(active[0], env, tmp_path)
    yesterday = argv[argv.index("--run-date") + 1]
    assert yesterday in (before, (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat())
    settings = dag.SubmitSettings(home="", raw=env["RAW"])
    assert argv == ["--master", env["SPARK_MASTER"], "--deploy-mode", "client"] + dag.spark_submit_args(
        settings, yesterday
    )
    # The backfill template submits pipelines/backfill.py with the same flags.
    (backfill,) = commented
    bargv = _run_cron_command(backfill, env, tmp_path)
    app = bargv.index("pipelines/backfill.py")
    nightly = argv.index("jobs/nightly.py")
    same = [a for a in argv[:nightly] if not a.startswith("vidrec-nightly-")]
    assert [a for a in bargv[:app] if a != "vidrec-backfill"] == same
    assert bargv[app + 1 :] == [
        "--start",
        "2026-03-01",
        "--end",
        "2026-03-31",
        "--raw",
        env["RAW"],
        "--conf",
        "conf/cluster-cpu.yaml",
    ]


def test_dag_prints_the_submit_command() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "airflow_dag.py"), "2026-03-31"],
        env={**os.environ, "VIDREC_HOME": "/srv/vidrec", "VIDREC_RAW": "/data/raw/{run_date}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    argv = shlex.split(done.stdout)
    assert argv[0] == "spark-submit" and "/srv/vidrec/jobs/nightly.py" in argv
    assert argv[argv.index("--raw") + 1] == "/data/raw/2026-03-31"


# --- the standalone cluster -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _marked_pids(token: str) -> list[int]:
    """Processes whose environment carries ``MARKER=token`` (everything the cluster started)."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return found


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({path}: {exc})"


#: Started beside the cluster, in its own session: if the test process dies (killed by CI, ^C twice),
#: it kills every process carrying the marker (SIGTERM, then SIGKILL 10 s later).
WATCHDOG = r"""
import os, signal, sys, time
parent, needle = int(sys.argv[1]), sys.argv[2].encode()
while os.getppid() == parent:
    time.sleep(2)
for sig in (signal.SIGTERM, signal.SIGKILL):
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and needle in open(f"/proc/{name}/environ", "rb").read().split(b"\0"):
                os.kill(int(name), sig)
        except OSError:
            pass
    time.sleep(10)
"""


class StandaloneCluster:
    """A Spark standalone master and workers on 127.0.0.1, started with ``bin/spark-class``."""

    def __init__(
        self, root: Path, env: Mapping[str, str], workers: int = 2, worker_props: Path | None = None
    ):
        self.root = root
        self.env = dict(env)
        self.workers = workers
        self.worker_props = worker_props
        self.port = _free_port()
        self.ui_port = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.spark_class = str(Path(self.env["SPARK_HOME"]) / "bin" / "spark-class")

    def _spawn(self, name: str, args: list[str]) -> None:
        with (self.root / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [self.spark_class, *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs.append((name, proc))

    def start(self) -> None:
        """Start the watchdog, the master and the workers (returns at once; see :meth:`wait_ready`)."""
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(os.getpid()), f"{MARKER}={self.env[MARKER]}"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._spawn(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                str(self.ui_port),
            ],
        )
        for i in range(self.workers):
            work = self.root / f"worker{i}"
            work.mkdir(parents=True, exist_ok=True)
            args = [
                "org.apache.spark.deploy.worker.Worker",
                self.url,
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "1536m",
                "--work-dir",
                str(work),
                "--webui-port",
                "0",
            ]
            if self.worker_props:
                args += ["--properties-file", str(self.worker_props)]
            self._spawn(f"worker{i}", args)

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as resp:
            return json.loads(resp.read())

    def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until every worker is registered ALIVE with the master; the master's JSON state."""
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}:\n{_tail(self.root / f'{name}.log')}"
                    )
            try:
                state = self.state()
                if sum(w.get("state") == "ALIVE" for w in state.get("workers", [])) == self.workers:
                    return state
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(_tail(self.root / f"{n}.log", 20) for n, _ in self.procs)
                raise RuntimeError(f"the standalone cluster was not ready in {timeout:.0f} s:\n{logs}")
            time.sleep(1.0)

    def stop(self, token: str) -> list[int]:
        """Stop workers, then the master (SIGTERM to each process group, SIGKILL after 30 s); then kill
        any process still carrying the marker. Returns the pids that had to be killed that way."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        leftovers: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # executors and Python workers wind down after the daemons
            leftovers = _marked_pids(token)
            if not leftovers:
                break
            time.sleep(1.0)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.watchdog is not None:
            self.watchdog.terminate()
            self.watchdog.wait(timeout=30)
        return leftovers


def _hermetic_python(folder: Path) -> Path:
    """A venv that sees the pinned stack (this venv's site-packages) but neither ``src/`` nor the
    editable install: a path line in a ``.pth`` adds the folder without running its ``.pth`` files."""
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(folder)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "vidrec-stack.pth").write_text("\n".join(paths) + "\n")
    return python


def _build_wheel(out: Path, scratch: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the project (the build leaves the source tree untouched)."""
    src = scratch / "project"
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("vidrec-*.whl")
    return wheel


def _summarize_event_log(folder: Path) -> dict[str, Any]:
    """Stage names, barrier stages and task placements from Spark's event log (then deleted: it is
    large); only the lines of the three events needed are parsed."""
    wanted = ('{"Event":"SparkListenerStageSubmitted"', '{"Event":"SparkListenerTaskEnd"')
    names: set[str] = set()
    barrier: set[int] = set()
    tasks: list[tuple[int, str, str]] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        with path.open(errors="replace") as fh:
            for line in fh:
                if not line.startswith(wanted):
                    continue
                event = json.loads(line)
                if event["Event"] == "SparkListenerStageSubmitted":
                    info = event["Stage Info"]
                    names.add(info["Stage Name"])
                    if any(rdd.get("Barrier") for rdd in info["RDD Info"]):
                        barrier.add(info["Stage ID"])
                else:
                    reason = event["Task End Reason"]["Reason"]
                    tasks.append((event["Stage ID"], event["Task Info"]["Executor ID"], reason))
    shutil.rmtree(folder, ignore_errors=True)
    return {"stage_names": names, "barrier_stages": barrier, "tasks": tasks}


@pytest.fixture(scope="module")
def cluster_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Everything above, once: the wheel, the release folder, the cluster, the nightly, the teardown."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail("the cluster test needs Java 17 (java on PATH or JAVA_HOME)")
    jars = sorted((REPO / ".cache" / "jars").glob("delta-*.jar"))
    if len(jars) < 2:
        pytest.fail(f"Delta's jars are missing in {REPO / '.cache' / 'jars'}: run `make setup`")
    import pyspark

    from vidrec.devdata import sample

    spark = request.getfixturevalue("spark")  # the local test session: generates the sample, reads gold

    dag = dag_module()
    root = tmp_path_factory.mktemp("cluster")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    # The release: what a deployment unpacks, outside the source tree.
    home = root / "release"
    wheel = _build_wheel(home / "dist", root / "build")
    for sub in ("jobs", "conf", ".cache/jars", ".cache/native"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "jobs" / "nightly.py", home / "jobs" / "nightly.py")
    for name in ("cluster.yaml", "cluster-cpu.yaml"):  # the GPU layer and the CPU layer it extends
        shutil.copy2(REPO / "conf" / name, home / "conf" / name)
    shutil.copy2(DISCOVERY, home / "conf" / "gpu_discovery.sh")
    for jar in jars:
        (home / ".cache" / "jars" / jar.name).symlink_to(jar)
    for lib in (REPO / ".cache" / "native").glob("lib*"):  # als.native_blas, read from the release home
        (home / ".cache" / "native" / lib.name).symlink_to(lib.resolve())
    events_dir = root / "events"
    events_dir.mkdir()
    local_layer = {
        "spark": {
            "shuffle_partitions": 2,
            "extra": {
                "spark.executor.instances": "2",
                "spark.executor.cores": "1",
                "spark.executor.memory": "1g",
                "spark.executor.memoryOverhead": "512m",
                "spark.ui.enabled": "false",
                "spark.databricks.delta.snapshotPartitions": "2",
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": events_dir.as_uri(),
                "spark.eventLog.compress": "false",
            },
        },
        "als": {"rank": 8, "max_iter": 5, "num_blocks": 2},
        "recommend": {"top_n": TOP_N, "user_block_size": 2048},
        "deep": {
            "launch": {
                "num_processes": 2,
                "use_gpu": False,
                "shard_root": None,
                "artifact_root": None,
                "rows_per_row_group": 16384,
            },
            "ncf": {"max_epochs": 2},
        },
        "models": CLUSTER_MODELS,
    }
    (home / "conf" / "cluster.local.yaml").write_text(yaml.safe_dump(local_layer))
    python = _hermetic_python(root / "pyenv")
    timings["wheel_and_release_s"] = time.perf_counter() - t0

    token = uuid.uuid4().hex
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and not k.startswith(("SPARK_", "PYSPARK_"))  # nothing of this process' Spark
    }
    (root / "spark-conf").mkdir()
    fake_gpu = _fake_nvidia_smi(root / "fake-gpu-bin", "0\\n")
    env.update(
        {
            MARKER: token,
            "SPARK_HOME": str(Path(pyspark.__file__).parent),
            "SPARK_CONF_DIR": str(root / "spark-conf"),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_DIRS": str(root / "local"),
            "SPARK_DAEMON_MEMORY": "384m",
            "PYSPARK_PYTHON": str(python),
            "PYSPARK_DRIVER_PYTHON": str(python),
            "PATH": f"{fake_gpu}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
    )
    probe = subprocess.run([str(python), "-c", "import vidrec"], env=env, capture_output=True, text=True)
    props = root / "worker.properties"
    props.write_text(
        "spark.worker.resource.gpu.amount 1\n"
        f"spark.worker.resource.gpu.discoveryScript {home / 'conf' / 'gpu_discovery.sh'}\n"
    )
    cluster = StandaloneCluster(root, env, workers=2, worker_props=props)
    result: dict[str, Any] = {
        "root": root,
        "home": home,
        "wheel": wheel,
        "timings": timings,
    }
    result["hermetic_import"] = probe
    result["env"] = env
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        t1 = time.perf_counter()
        cluster.start()  # the JVMs start while the sample is generated
        raw = str(root / "raw")
        sample.generate(spark, raw, n_users=200, n_items=80, days=20, end_date=RUN_DATE, seed=7)
        timings["sample_s"] = time.perf_counter() - t1
        result["master_state"] = cluster.wait_ready()
        timings["cluster_ready_s"] = time.perf_counter() - t1

        warehouse = root / "warehouse"
        settings = dag.SubmitSettings(
            home=str(home),
            raw=raw,
            warehouse=str(warehouse),
            conf_file="conf/cluster.yaml",
            driver_memory="1g",
        )
        result["release_problems"] = dag.release_problems(settings)
        argv = [
            str(Path(env["SPARK_HOME"]) / "bin" / "spark-submit"),
            "--master",
            cluster.url,
            "--deploy-mode",
            "client",
            *dag.spark_submit_args(settings, RUN_DATE.isoformat()),
        ]
        workdir = root / "submit"
        workdir.mkdir()
        log_path = root / "nightly.log"
        t2 = time.perf_counter()
        with log_path.open("wb") as log:
            driver = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                result["returncode"] = driver.wait(timeout=2400)
            except subprocess.TimeoutExpired:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait(timeout=60)
                result["returncode"] = "timeout after 2400 s"
        timings["nightly_s"] = time.perf_counter() - t2
        result.update(argv=argv, log=log_path, warehouse=str(warehouse))
    finally:
        t3 = time.perf_counter()
        result["leftovers"] = cluster.stop(token)
        timings["teardown_s"] = time.perf_counter() - t3
        result["after_teardown"] = _marked_pids(token)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # every reaped descendant: the whole cluster
    timings["cluster_cpu_s"] = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    result["events"] = _summarize_event_log(events_dir)
    timings["total_s"] = time.perf_counter() - t0
    print(f"cluster test timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    yield result


def cluster_test(fn: Any) -> Any:
    """Marks of the tests that share :func:`cluster_run` (skipped before any fixture starts)."""
    for mark in (
        pytest.mark.slow,
        pytest.mark.cluster,
        pytest.mark.spark,
        pytest.mark.skipif(
            os.environ.get("VIDREC_TEST_CLUSTER") != "1",
            reason="starts a Spark standalone cluster: run `make test-cluster`",
        ),
    ):
        fn = mark(fn)
    return fn


def _require_success(run: dict[str, Any]) -> None:
    assert run["returncode"] == 0, f"spark-submit: {run['returncode']}\n{_tail(run['log'], 120)}"


@cluster_test
def test_nightly_ran_on_the_cluster_from_the_wheel(spark: Any, cluster_run: dict[str, Any]) -> None:
    from vidrec import pipeline
    from vidrec.data import tables

    probe = cluster_run["hermetic_import"]
    assert probe.returncode != 0 and "No module named 'vidrec'" in probe.stderr  # only the wheel has it
    assert zipfile.ZipFile(cluster_run["wheel"]).getinfo("vidrec/base.yaml").file_size > 0
    assert cluster_run["wheel"].name == dag_module().WHEEL
    state = cluster_run["master_state"]
    assert sum(w["state"] == "ALIVE" for w in state["workers"]) == 2
    assert cluster_run.get("release_problems") == []
    _require_success(cluster_run)
    assert "PYTHONPATH" not in cluster_run["env"]
    log = cluster_run["log"].read_text(errors="replace")
    if (REPO / ".cache" / "native" / "libopenblas.so.0").is_file():  # linked into the release home
        assert "als.native_blas: no file" not in log and "make setup" not in log
    runs = tables.read(spark, cluster_run["warehouse"], C.T_RUNS).collect()
    assert sorted(r.stage for r in runs) == sorted(pipeline.STAGE_NAMES)
    assert {r.status for r in runs} == {"succeeded"}
    # Python stages name their call site: the driver ran vidrec from the wheel shipped with --py-files.
    events = cluster_run["events"]
    vidrec_sites = [s for s in events["stage_names"] if "/vidrec/" in s]
    assert vidrec_sites and all(f"{dag_module().WHEEL}/vidrec/" in s for s in vidrec_sites), vidrec_sites[:5]
    assert {executor for _, executor, _ in events["tasks"]} == {"0", "1"}


@cluster_test
def test_gold_contract_after_the_cluster_run(spark: Any, cluster_run: dict[str, Any]) -> None:
    from pyspark.sql import functions as F

    from vidrec.data import contracts, tables

    _require_success(cluster_run)
    wh = cluster_run["warehouse"]
    gold = tables.read(spark, wh, C.T_RECOMMENDATIONS).where(F.col(C.COL_RUN_DATE) == F.lit(RUN_DATE))
    contracts.check_recommendations(gold, None, TOP_N)  # ranks 1..N, no duplicate, N <= top_n, scores
    algorithms = sorted(r[0] for r in gold.select(C.COL_ALGORITHM).distinct().collect())
    assert algorithms == sorted(CLUSTER_MODELS)
    # Every indexed user gets a list from every model (a personal one or the popularity fallback).
    users = tables.read(spark, wh, C.T_USER_INDEX).select(C.COL_USER)
    algos = spark.createDataFrame([(a,) for a in CLUSTER_MODELS], [C.COL_ALGORITHM])
    served = gold.select(C.COL_USER, C.COL_ALGORITHM).distinct()
    missing = users.crossJoin(algos).join(served, [C.COL_USER, C.COL_ALGORITHM], "left_anti")
    assert missing.limit(5).collect() == []


@cluster_test
def test_torchdistributor_trained_on_both_executors(spark: Any, cluster_run: dict[str, Any]) -> None:
    from pyspark.sql import functions as F

    from vidrec.data import tables

    _require_success(cluster_run)
    events = cluster_run["events"]
    # ncf is fitted twice (on the evaluation split, then on everything): one barrier stage each, whose
    # two tasks (one DDP process each) ran on the two executors.
    assert len(events["barrier_stages"]) == 2
    for stage in events["barrier_stages"]:
        placed = sorted((executor, reason) for sid, executor, reason in events["tasks"] if sid == stage)
        assert placed == [("0", "Success"), ("1", "Success")], placed
    artifact = Path(cluster_run["warehouse"]) / C.MODELS / RUN_DATE.isoformat() / C.ALGO_NCF
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["device"] == "cpu" and metrics["epochs_done"] >= 1
    for rank in (0, 1):
        assert f"rank {rank}/2" in (artifact / "logs" / f"rank-{rank}.log").read_text()
    # ncf was scored: evaluated on the split, and its lists are in gold (the contract test checks them).
    scored = tables.read(spark, cluster_run["warehouse"], C.T_MODEL_METRICS)
    ndcg = scored.where((F.col(C.COL_ALGORITHM) == C.ALGO_NCF) & (F.col(C.COL_METRIC) == "ndcg")).collect()
    assert ndcg and all(r[C.COL_VALUE] >= 0 for r in ndcg)


@cluster_test
def test_cluster_processes_are_gone(cluster_run: dict[str, Any]) -> None:
    assert cluster_run["leftovers"] == [], "processes outlived the master and workers (killed)"
    assert cluster_run["after_teardown"] == []
