"""The one place that owns Spark/Delta test configuration.

One session-scoped SparkSession (``local[2]``, UI off, few shuffle partitions, Delta on) serves every
test; each test that writes tables gets its own temporary warehouse through ``warehouse``.

Every Spark the tests start, this session and the jobs they run as subprocesses, gets
:data:`TEST_SUBMIT_ARGS` through ``PYSPARK_SUBMIT_ARGS`` (pyspark's launcher reads it): Spark SQL
interpreted instead of compiled, and the serial garbage collector. On the tests' tiny tables
compiling each query costs more than it saves: the reliability suite's reference night took
140-145 s instead of 176-231 s, with 20-29% less CPU, side by side (docs/performance.md). The results
are the same by Spark's contract (it falls back to the interpreted path whenever compilation fails);
`make demo`, `make bench` and the ML-100k runs keep Spark's defaults, so the compiled path runs
there. Export ``PYSPARK_SUBMIT_ARGS=pyspark-shell`` to run the tests with Spark's defaults.
"""

from __future__ import annotations

import faulthandler
import functools
import json
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rerun_hung  # tests/rerun_hung.py: the hang files' folder and first line, shared with its reader

from vidrec.config import Config, load_config

#: Spark settings of every test session and of every job a test starts (module docstring).
TEST_SUBMIT_ARGS = (
    "--conf spark.sql.codegen.wholeStage=false --conf spark.sql.codegen.factoryMode=NO_CODEGEN "
    "--conf spark.driver.extraJavaOptions=-XX:+UseSerialGC pyspark-shell"
)
os.environ.setdefault("PYSPARK_SUBMIT_ARGS", TEST_SUBMIT_ARGS)

#: The time limit of the scheduled suite's tests (``extended``, ``cluster``), which repeat whole nightlies
#: or start a cluster; every other test has the 15 minutes of ``timeout`` in pyproject.toml.
SCHEDULED_TIMEOUT_S = 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        scheduled = item.get_closest_marker("extended") or item.get_closest_marker("cluster")
        if scheduled and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SCHEDULED_TIMEOUT_S))


#: How long past its own time limit a test may stay stuck before its worker process is ended.
#: pytest-timeout's limit works by a signal, whose handler runs only when the test's thread is back in
#: Python: a thread stuck inside native code (a deadlocked thread pool, a blocking C call) would hold the
#: whole suite until CI's own limit. faulthandler's watchdog thread needs no help from the stuck thread:
#: it writes every thread's stack to ``.cache/test-hangs/`` and ends the process, xdist reports the test
#: as crashed and replaces the worker, and the summary at the end prints the stacks.
HANG_GRACE_S = float(os.environ.get("VIDREC_TEST_HANG_GRACE_S", "120"))


def _limit_s(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        return float(marker.args[0] if marker.args else marker.kwargs["timeout"])
    return float(item.config.getini("timeout") or 0)


#: node ids of the failed tests, kept by the controller for tests/rerun_hung.py (``failed.json``)
_FAILED: set[str] | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _FAILED
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        for old in rerun_hung.HANGS.glob("*"):
            old.unlink(missing_ok=True)
        _FAILED = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _FAILED is not None and report.failed:
        _FAILED.add(report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _FAILED:
        rerun_hung.HANGS.mkdir(parents=True, exist_ok=True)
        rerun_hung.FAILED.write_text(json.dumps(sorted(_FAILED)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    limit = _limit_s(item)
    if limit <= 0:
        yield
        return
    worker = getattr(item.config, "workerinput", {}).get("workerid", "main")
    path = rerun_hung.HANGS / f"{worker}-{os.getpid()}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    procs = threading.Timer(limit + HANG_GRACE_S / 2, _dump_processes, (path.with_suffix(".procs.log"),))
    procs.daemon = True
    with path.open("w", encoding="utf-8") as fh:
        fh.write(rerun_hung.HANG_HEAD.format(node=item.nodeid, seconds=limit + HANG_GRACE_S) + "\n")
        fh.flush()
        faulthandler.dump_traceback_later(limit + HANG_GRACE_S, exit=True, file=fh)
        procs.start()
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
            procs.cancel()
    path.unlink()
    path.with_suffix(".procs.log").unlink(missing_ok=True)


def _dump_processes(out: Path) -> None:
    """Before the backstop ends a stuck worker (if Python still runs): the process tree, and the stacks
    of the worker's JVMs (the shared SparkSession's driver), for what the Python stacks cannot show."""
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=60, check=False)
    with out.open("w", encoding="utf-8") as fh:
        fh.write(run(["ps", "-e", "-o", "pid,ppid,etime,pcpu,rss,stat,args", "--forest"]).stdout)
        children = run(["pgrep", "-P", str(os.getpid()), "java"]).stdout.split()
        for pid in children:
            fh.write(f"\n===== jstack {pid} =====\n{run(['jstack', pid]).stdout}")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for hung in sorted([*rerun_hung.HANGS.glob("*.txt"), *rerun_hung.HANGS.glob("*.procs.log")]):
        terminalreporter.write_sep("=", f"stuck test: {hung.name}")
        terminalreporter.write_line(hung.read_text(encoding="utf-8", errors="replace"))


@pytest.fixture(scope="session")
def base_conf(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """Local configuration tuned for 2-core tests: small shuffles, a small ALS."""
    root = tmp_path_factory.mktemp("spark")
    return load_config(
        overrides={
            "warehouse": str(root / "warehouse"),
            "spark": {
                "master": "local[2]",
                "shuffle_partitions": 2,
                "driver_memory": "3g",
                "checkpoint_dir": str(root / "checkpoints"),
            },
            "als": {"rank": 8, "max_iter": 5, "num_blocks": 2},
            "recommend": {"top_n": 10},
            "models": ["popularity", "als"],
        }
    )


@pytest.fixture(scope="session")
def spark(base_conf: Config) -> Iterator[Any]:
    """The shared local SparkSession with Delta."""
    from vidrec.pipeline.session import build_spark

    logging.getLogger("py4j").setLevel(logging.WARNING)
    session = build_spark(base_conf)
    yield session
    session.stop()


@pytest.fixture()
def warehouse(tmp_path: Path) -> str:
    """A fresh, empty warehouse folder for one test."""
    return str(tmp_path / "warehouse")


@pytest.fixture()
def conf(base_conf: Config, warehouse: str) -> Config:
    """``base_conf`` pointed at this test's warehouse."""
    return base_conf.replace(warehouse=warehouse)
