"""The fixed cost of a night: one tiny nightly run twice, with its Spark job count and stage seconds.

The reliability suite's reference night (60 users, 40 titles, 10 days, ``popularity`` and ``als``, the
test session's settings) on one embedded ``local[2]`` session. Extra Spark settings come as ``key=value``
arguments, to compare a setting side by side:

    PYTHONPATH=src .venv/bin/python bench/tiny_night.py spark.sql.adaptive.enabled=false
    PYTHONPATH=src .venv/bin/python bench/tiny_night.py --nights 1 spark.sql.codegen.factoryMode=NO_CODEGEN

Prints one JSON line: session start, sample, each night's seconds and Spark jobs, per night each
stage's Spark jobs and seconds (each stage is wrapped to read Spark's job count before and after it),
and the CPU seconds of the whole process tree (driver Python, JVM, Python workers) since it started.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time

from run import PeakRss  # bench/run.py: CPU seconds of the whole process tree (the JVM included)

from vidrec import pipeline
from vidrec.config import load_config
from vidrec.devdata import sample
from vidrec.pipeline.session import build_spark
from vidrec.pipeline.stages import STAGES

RUN_DATE = dt.date(2026, 3, 31)


def main(argv: list[str]) -> None:
    nights_to_run = 2
    if argv[:1] == ["--nights"]:
        nights_to_run, argv = int(argv[1]), argv[2:]
    extra = {"spark.ui.retainedJobs": "100000", **dict(a.split("=", 1) for a in argv)}
    root = tempfile.mkdtemp(prefix="vidrec-tiny-night-")
    conf = load_config(
        overrides={
            "warehouse": f"{root}/wh",
            "spark": {
                "master": "local[2]",
                "shuffle_partitions": 2,
                "driver_memory": "3g",
                "checkpoint_dir": f"{root}/checkpoints",
                "extra": extra,
            },
            "als": {"rank": 8, "max_iter": 5, "num_blocks": 2},
            "recommend": {"top_n": 10},
            "models": ["popularity", "als"],
        }
    )
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    spark = build_spark(conf)
    t1 = time.perf_counter()
    tracker = spark.sparkContext.statusTracker()
    per_stage: list[dict[str, list[float]]] = []

    def counted(name, fn):  # noqa: ANN001, ANN202 - a stage function and its wrapper
        def run(rc):  # noqa: ANN001, ANN202
            jobs, start = len(tracker.getJobIdsForGroup()), time.perf_counter()
            try:
                return fn(rc)
            finally:
                per_stage[-1][name] = [
                    len(tracker.getJobIdsForGroup()) - jobs,
                    round(time.perf_counter() - start, 1),
                ]

        return run

    STAGES[:] = [(name, counted(name, fn)) for name, fn in STAGES]  # the runner reads this same list
    sample.generate(spark, f"{root}/raw", n_users=60, n_items=40, days=10, end_date=RUN_DATE, seed=5)
    t2 = time.perf_counter()
    nights = []
    with PeakRss([os.getpid()], period=1.0) as tree:  # CPU is cumulative: from the process start
        for _ in range(nights_to_run):
            per_stage.append({})
            jobs, start = len(tracker.getJobIdsForGroup()), time.perf_counter()
            pipeline.run_nightly(spark, conf, RUN_DATE, f"{root}/raw")
            nights.append((round(time.perf_counter() - start, 1), len(tracker.getJobIdsForGroup()) - jobs))
    result = {
        "extra": extra,
        "session_s": round(t1 - t0, 1),
        "sample_s": round(t2 - t1, 1),
        "nights_s": [s for s, _ in nights],
        "spark_jobs": [j for _, j in nights],
        "cpu_s": round(tree.cpu_seconds, 1),
        "stages_jobs_and_s": per_stage,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
