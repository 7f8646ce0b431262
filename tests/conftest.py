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

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
