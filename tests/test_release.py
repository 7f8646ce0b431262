"""The nightly as an operator deploys it: the release home, layered environment files, and no silent hang.

- Every relative path in conf, and a relative ``--conf``, is read from the release home
  (``VIDREC_HOME``, else the folder above the running job, else the source tree), never from the
  current folder or the installed package's folder; errors name the absolute path looked at.
- ``extends:`` layers one environment file over another (``conf/cluster.yaml`` over
  ``conf/cluster-cpu.yaml``), with clear errors for a missing parent or a loop.
- Bad input for a deployment (``VIDREC_HOME`` without ``conf/``, a missing wheel, a missing conf
  file) is one line with the absolute path and exit code 2, before Spark starts.
- GPU requests on a local master fail at once (the preflight) instead of hanging, and a first job
  whose tasks never start ends the process with exit code 2 (the watchdog).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vidrec.config import ConfigError, env_layer, find_home, load_config, paths, scheduling
from vidrec.pipeline import preflight

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-03-31"


def _release(root: Path, local: str = "", **files: str) -> Path:
    """A minimal release folder: ``conf/local.yaml`` (``local``), ``jobs/`` and any other ``files``."""
    (root / "conf").mkdir(parents=True)
    (root / "jobs").mkdir()
    (root / "conf" / "local.yaml").write_text(local)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# --- the release home ------------------------------------------------------------------------------


def test_home_is_vidrec_home_then_the_jobs_release_then_the_source_tree(tmp_path: Path) -> None:
    release = _release(tmp_path / "release")
    assert find_home({"VIDREC_HOME": str(release)}, argv0="") == release
    # spark-submit runs <home>/jobs/nightly.py: the folder above the script is the home
    assert find_home({}, argv0=str(release / "jobs" / "nightly.py")) == release
    assert find_home({}, argv0=str(release / "pipelines" / "backfill.py")) == release
    # a script elsewhere (pytest, a console script in a venv): the source tree this package lives in
    assert find_home({}, argv0=str(tmp_path / "venv" / "bin" / "vidrec")) == REPO
    assert find_home({}, argv0="-c") == REPO


def test_home_is_never_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = _release(tmp_path / "cwd", local="als:\n  rank: 7\n")
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("VIDREC_HOME", raising=False)
    assert find_home() == REPO
    conf = load_config()
    assert conf.als.rank != 7  # conf/local.yaml of the source tree, not of the current folder
    assert conf.spark.jars_dir == str(REPO / ".cache" / "jars")


def test_relative_paths_in_conf_resolve_from_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = _release(
        tmp_path / "release",
        local=textwrap.dedent(
            """\
            warehouse: wh
            spark:
              checkpoint_dir: cp
            deep:
              launch:
                shard_root: shared/features
                artifact_root: /abs/models
            """
        ),
    )
    monkeypatch.setenv("VIDREC_HOME", str(release))
    monkeypatch.chdir(tmp_path)
    conf = load_config()
    assert conf.warehouse == str(release / "wh")
    assert conf.spark.jars_dir == str(release / ".cache" / "jars")
    assert conf.spark.checkpoint_dir == str(release / "cp")
    assert conf.als.native_blas == str(release / ".cache" / "native" / "libopenblas.so.0")
    assert conf.deep.launch.shard_root == str(release / "shared" / "features")
    assert conf.deep.launch.artifact_root == "/abs/models"
    assert conf.tracking.uri == str(release / "mlruns")  # null: the file store in the home
    # URIs, "" and names MLflow knows stay as written
    conf = load_config(
        overrides=[
            "warehouse=s3a://b/wh",
            "spark.jars_dir=''",
            "tracking.uri=databricks",
            "als.native_blas=''",
        ]
    )
    assert (conf.warehouse, conf.spark.jars_dir, conf.tracking.uri, conf.als.native_blas) == (
        "s3a://b/wh",
        "",
        "databricks",
        "",
    )


def test_relative_conf_is_read_from_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = _release(tmp_path / "release", **{"conf/site.yaml": "als:\n  rank: 11\n"})
    monkeypatch.setenv("VIDREC_HOME", str(release))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "site.yaml").write_text("als:\n  rank: 99\n")  # the current folder: never read
    assert load_config("conf/site.yaml").als.rank == 11
    assert load_config("site.yaml").als.rank == 11  # also looked up in the home's conf/
    with pytest.raises(ConfigError) as err:
        load_config("conf/nope.yaml")
    assert f"config file not found: {release / 'conf' / 'nope.yaml'}" in str(err.value)


def test_bad_vidrec_home_names_the_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    for given, why in (("empty", "holds no conf/ folder"), ("missing", "does not exist")):
        monkeypatch.setenv("VIDREC_HOME", given)
        with pytest.raises(ConfigError) as err:
            load_config()
        assert f"VIDREC_HOME={given}: {tmp_path / given} {why}" in str(err.value)


def test_without_a_home_relative_paths_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "_SOURCE_HOME", tmp_path / "not-a-tree")  # as from an installed wheel
    monkeypatch.delenv("VIDREC_HOME", raising=False)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "venv" / "bin" / "vidrec")])
    assert find_home() is None
    with pytest.raises(ConfigError, match="no release home.*set VIDREC_HOME"):
        load_config()
    env = tmp_path / "abs.yaml"
    env.write_text("spark:\n  jars_dir: ''\n")
    with pytest.raises(ConfigError, match=r"'warehouse' \(./warehouse\) is relative"):
        load_config(env)


def test_missing_files_get_advice_that_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidrec.pipeline.session import delta_jars

    with pytest.raises(ConfigError) as err:
        delta_jars("no-jars-here")  # the source tree: make setup applies
    assert f"no delta-spark_*.jar in {REPO / 'no-jars-here'}; run `make setup` in {REPO}" in str(err.value)
    release = _release(tmp_path / "release")
    monkeypatch.setenv("VIDREC_HOME", str(release))
    with pytest.raises(ConfigError) as err:
        delta_jars(".cache/jars")
    message = str(err.value)
    assert f"no delta-spark_*.jar in {release / '.cache' / 'jars'}; copy Delta's jars" in message
    assert "make setup`" not in message.split("copy")[0] and "run `make setup`" not in message


# --- extends ---------------------------------------------------------------------------------------


def test_extends_layers_one_environment_file_over_another(tmp_path: Path) -> None:
    (tmp_path / "base-site.yaml").write_text("als:\n  rank: 16\n  alpha: 3\nspark:\n  extra:\n    a: '1'\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.yaml").write_text("extends: ../base-site.yaml\nals:\n  rank: 32\n")
    (tmp_path / "top.yaml").write_text("extends: sub/mid.yaml\nspark:\n  extra:\n    b: '2'\n")
    (tmp_path / "top.local.yaml").write_text("als:\n  alpha: 9\n")
    conf = load_config(tmp_path / "top.yaml")
    assert (conf.als.rank, conf.als.alpha) == (32, 9.0)
    assert conf.spark.extra == {"a": "1", "b": "2"}
    assert env_layer(tmp_path / "top.yaml") == {
        "als": {"rank": 32, "alpha": 3},
        "spark": {"extra": {"a": "1", "b": "2"}},
    }


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"a.yaml": "extends: nope.yaml\n"},
            "a.yaml: 'extends: nope.yaml': config file not found: {tmp}/nope.yaml",
        ),
        (
            {"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"},
            "makes a loop: {tmp}/a.yaml -> {tmp}/b.yaml -> {tmp}/a.yaml",
        ),
        ({"a.yaml": "extends: a.yaml\n"}, "makes a loop"),
        ({"a.yaml": "extends: [b.yaml]\n"}, "'extends' must name an environment file"),
        (
            {"a.yaml": "extends: b.yaml\n", "b.yaml": "als:\n  rnak: 3\n"},
            "b.yaml: unknown config key 'als.rnak'",
        ),
    ],
    ids=["missing", "loop", "self", "not-a-name", "bad-key-in-parent"],
)
def test_extends_errors_name_the_files(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "a.yaml")
    assert message.replace("{tmp}", str(tmp_path)) in str(err.value)


def test_a_local_layer_cannot_extend(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("")
    (tmp_path / "a.local.yaml").write_text("extends: b.yaml\n")
    with pytest.raises(ConfigError, match="unknown config key 'extends'"):
        load_config(tmp_path / "a.yaml")


# --- scheduling: the preflight -----------------------------------------------------------------------


def test_local_task_slots() -> None:
    assert scheduling.local_task_slots("local") == 1
    assert scheduling.local_task_slots("local[2]") == 2
    assert scheduling.local_task_slots("local[4, 3]") == 4
    assert scheduling.local_task_slots("local[*]") == os.cpu_count()
    assert scheduling.local_task_slots("local[4]", task_cpus=2) == 2
    for master in ("yarn", "spark://h:7077", "k8s://https://h", "local-cluster[2,1,1024]", ""):
        assert scheduling.local_task_slots(master) is None


def test_gpu_requests_on_a_local_master_are_refused() -> None:
    gpu = dict(load_config(REPO / "conf" / "cluster.yaml").spark.extra)
    with pytest.raises(ConfigError) as err:
        preflight.check_schedulable("local[2]", gpu)
    message = str(err.value)
    assert "'spark.task.resource.gpu.amount: 1'" in message and "local master local[2]" in message
    assert "conf/cluster-cpu.yaml" in message
    preflight.check_schedulable("yarn", gpu)  # a cluster may offer GPUs: the watchdog covers it
    preflight.check_schedulable("local[2]", dict(load_config(REPO / "conf" / "cluster-cpu.yaml").spark.extra))
    preflight.check_schedulable("local[2]", {"spark.task.resource.gpu.amount": "0"})


def test_deep_roots_on_object_storage_are_refused(base_conf) -> None:
    conf = base_conf.override({"warehouse": "s3a://b/wh", "models": ["popularity", "ncf"]})
    with pytest.raises(ConfigError, match=r"'deep.launch.shard_root': s3a://b/wh/features \(null: under"):
        preflight.check_deep_roots(conf)
    preflight.check_deep_roots(
        conf.override({"deep": {"launch": {"shard_root": "/mnt/s", "artifact_root": "/mnt/a"}}})
    )
    preflight.check_deep_roots(conf.override({"models": ["popularity", "als"]}))  # no deep model: no shards


# --- bad deployments: one line, exit 2, before Spark starts ----------------------------------------


def _job(
    argv: list[str], env: dict[str, str], cwd: Path, script: Path = REPO / "jobs" / "nightly.py"
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VIDREC_", "PYSPARK_", "SPARK_"))}
    return subprocess.run(
        [sys.executable, str(script), *argv],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _raw(tmp_path: Path) -> str:
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "events.jsonl").write_text("")
    return str(raw)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_bad_vidrec_home_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "not-a-release").mkdir()
    args = ["--raw", _raw(tmp_path), "--warehouse", str(tmp_path / "wh"), "--run-date", RUN_DATE]
    done = _job(args, {"VIDREC_HOME": str(tmp_path / "not-a-release")}, tmp_path)
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert f"VIDREC_HOME={tmp_path / 'not-a-release'}" in line and "holds no conf/ folder" in line
    assert not (tmp_path / "wh").exists()


def test_missing_conf_file_exits_2_naming_the_absolute_path(tmp_path: Path) -> None:
    args = ["--raw", _raw(tmp_path), "--warehouse", str(tmp_path / "wh"), "--run-date", RUN_DATE]
    done = _job([*args, "--conf", "conf/cluster-typo.yaml"], {}, tmp_path)
    assert done.returncode == 2
    assert f"config file not found: {REPO / 'conf' / 'cluster-typo.yaml'}" in _one_error_line(done.stderr)
    assert not (tmp_path / "wh").exists()


def test_missing_wheel_exits_2_naming_it(tmp_path: Path) -> None:
    """The job as spark-submit starts it from a release: vidrec only on PYTHONPATH, from the wheel."""
    release = _release(tmp_path / "release")
    shutil.copy2(REPO / "jobs" / "nightly.py", release / "jobs" / "nightly.py")
    wheel = release / "dist" / "vidrec-0.1.0-py3-none-any.whl"
    python = tmp_path / "bare-python"
    python.symlink_to(Path(sys.base_prefix) / "bin" / Path(sys.executable).name)  # no site-packages of ours
    done = subprocess.run(
        [str(python), "-S", str(release / "jobs" / "nightly.py"), "--run-date", RUN_DATE],
        env={"PYTHONPATH": f"{wheel}{os.pathsep}/nonexistent/pyspark.zip", "PATH": os.environ["PATH"]},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert f"no wheel at {wheel} (spark-submit --py-files)" in line and "pip wheel --no-deps" in line


# --- no silent hang --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.spark
def test_spark_submit_of_the_gpu_layer_on_local_master_exits_2_at_once(tmp_path: Path) -> None:
    """conf/cluster.yaml asks every task for a GPU; spark-submit --master local[2] must not hang."""
    import pyspark

    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDREC_", "PYSPARK_", "SPARK_"))}
    env.update(
        PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1"
    )
    argv = [str(submit), "--master", "local[2]", str(REPO / "jobs" / "nightly.py"), "--raw", _raw(tmp_path)]
    argv += ["--warehouse", str(tmp_path / "wh"), "--run-date", RUN_DATE, "--conf", "conf/cluster.yaml"]
    t0 = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - t0
    output = done.stdout + done.stderr  # spark-submit passes the driver's stderr on as its stdout
    assert done.returncode == 2, output[-3000:]
    assert "'spark.task.resource.gpu.amount: 1'" in output and "conf/cluster-cpu.yaml" in output
    assert seconds < 120, seconds  # the JVM's start; nothing waits for tasks
    assert not (tmp_path / "wh").exists()


WATCHED = """
import sys
from pyspark.sql import SparkSession
from vidrec.config import load_config
from vidrec.pipeline.session import configure_builder, watch_first_job

conf = load_config(overrides={{
    "warehouse": sys.argv[1],
    "spark": {{"master": "local[2]", "driver_memory": "1g", "extra": {{  # conf/cluster.yaml's GPU settings
        "spark.executor.resource.gpu.amount": "1",
        "spark.executor.resource.gpu.discoveryScript": sys.argv[2],
        "spark.task.resource.gpu.amount": "1",
    }}}},
}})
spark = configure_builder(SparkSession.builder, conf).getOrCreate()  # no preflight: as on a cluster
watch_first_job(spark, {timeout}, poll_s=0.5)
print("counting", flush=True)
spark.range(10).count()  # never gets a task: no executor offers a GPU
print("finished", flush=True)
"""


@pytest.mark.slow
@pytest.mark.spark
def test_first_job_watchdog_ends_a_run_whose_tasks_never_start(tmp_path: Path) -> None:
    script = tmp_path / "watched.py"
    script.write_text(WATCHED.format(timeout=5))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDREC_", "PYSPARK_", "SPARK_"))}
    env["PYTHONPATH"] = str(REPO / "src")
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "wh"), str(REPO / "conf" / "gpu_discovery.sh")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    seconds = time.monotonic() - t0
    assert done.returncode == 2, done.stderr[-3000:]
    assert "counting" in done.stdout and "finished" not in done.stdout
    assert "no task of the first Spark job started within 5 s (spark.schedule_timeout_s)" in done.stderr
    assert "spark.task.resource.gpu.amount=1" in done.stderr and "conf/cluster-cpu.yaml" in done.stderr
    assert seconds < 180, seconds


@pytest.mark.spark
def test_watchdog_stays_quiet_when_tasks_run(spark) -> None:
    from vidrec.pipeline.session import watch_first_job

    calls: list[str] = []
    thread = watch_first_job(spark, 30, on_stuck=calls.append, poll_s=0.05)
    assert thread is not None
    assert spark.range(1000).selectExpr("sum(id)").first()[0] == 499500
    thread.join(timeout=30)
    assert not thread.is_alive() and calls == []
    assert watch_first_job(spark, 0) is None  # 0: off
