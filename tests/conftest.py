"""The one place that owns Spark/Delta test configuration.

One session-scoped SparkSession (``local[2]``, UI off, few shuffle partitions, Delta on) serves every
test; each test that writes tables gets its own temporary warehouse through ``warehouse``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vidrec.config import Config, load_config


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
