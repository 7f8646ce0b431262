"""RMSE/MAE of the rating model against the global-mean and item-mean baselines, on each split.

    PYTHONPATH=src .venv/bin/python bench/rating.py --raw DIR [--raw DIR ...] \\
        [--protocols random:0.25,chrono:0.2] [--set rating.rank=20 ...] [--out-json FILE]

Each ``--raw`` folder holds raw files of the input contract (``events*``, ``items*``: the generated
sample, or MovieLens converted by ``jobs/convert_movielens.py``). Its events are split by each protocol
of ``--protocols`` (``protocol:held-out fraction``; the library's one carve,
:func:`vidrec.evaluation.context.split_events`, with ``evaluation.seed``), folded into interactions as
the nightly does, and scored by :func:`vidrec.evaluation.evaluate.rating_metrics` (the rating model of
:mod:`vidrec.models.rating` with the configuration's ``rating`` section, and both baselines) on every
held-out rated pair. With ``--explicit-als`` the table also has the explicit ALS that stood behind RMSE
before (rank 48, regParam 0.5, held-out pairs it cannot predict dropped). Prints one table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from vidrec import constants as C
from vidrec.config import load_config
from vidrec.data import raw
from vidrec.data.matrix import build_interactions
from vidrec.evaluation import metrics
from vidrec.evaluation.context import split_events
from vidrec.evaluation.evaluate import rating_metrics
from vidrec.models.rating import rating_rows


def load(spark: SparkSession, folder: str) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """``(events, items, user_index, item_index)`` of a raw folder, events typed and indexed."""
    sources = raw.discover(folder)
    events = raw.read_entity(spark, sources, "events")
    items = raw.read_entity(spark, sources, "items")
    if events is None or items is None:
        raise SystemExit(f"{folder}: needs events* and items* files")
    events = events.where(~F.col(raw.COL_MALFORMED)).select(
        C.COL_EVENT_ID,
        C.COL_USER,
        C.COL_ITEM,
        F.col(C.COL_EVENT_TYPE),
        F.to_timestamp(C.COL_TS).alias(C.COL_TS),
        F.col(C.COL_WATCH_SECONDS).cast("double").alias(C.COL_WATCH_SECONDS),
        F.col(C.COL_RATING).cast("double").alias(C.COL_RATING),
    )
    events = events.where(F.col(C.COL_TS).isNotNull() & F.col(C.COL_USER).isNotNull())
    items = items.where(~F.col(raw.COL_MALFORMED)).select(
        C.COL_ITEM, F.col("duration_seconds").cast("double").alias("duration_seconds")
    )
    items = items.dropDuplicates([C.COL_ITEM])
    ids = events.select(C.COL_USER).distinct()
    user_index = ids.withColumn(C.COL_USER_IDX, F.row_number().over(Window.orderBy(C.COL_USER)) - 1)
    known = items.select(C.COL_ITEM).unionByName(events.select(C.COL_ITEM)).distinct()
    item_index = known.withColumn(C.COL_ITEM_IDX, F.row_number().over(Window.orderBy(C.COL_ITEM)) - 1)
    user_index, item_index = user_index.cache(), item_index.cache()
    events = events.join(user_index, C.COL_USER).join(item_index, C.COL_ITEM).cache()
    return events, items, user_index, item_index


def explicit_als(train: DataFrame, test: DataFrame) -> dict[str, float]:
    """The explicit ALS behind RMSE before the rating model (rank 48, 12 iterations, regParam 0.5)."""
    model = ALS(
        rank=48,
        maxIter=12,
        regParam=0.5,
        seed=42,
        userCol=C.COL_USER_IDX,
        itemCol=C.COL_ITEM_IDX,
        ratingCol=C.COL_RATING,
        coldStartStrategy="drop",
    ).fit(rating_rows(train))
    test_r = rating_rows(test)
    pred = model.transform(test_r.select(C.COL_USER_IDX, C.COL_ITEM_IDX)).withColumn(
        "prediction", F.least(F.greatest("prediction", F.lit(0.5)), F.lit(5.0))
    )
    return metrics.rating_errors(pred, test_r)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", action="append", required=True, help="raw folder (repeatable)")
    parser.add_argument("--protocols", default="random:0.25,chrono:0.2", help="protocol:fraction,...")
    parser.add_argument("--set", action="append", default=[], help="configuration override key=value")
    parser.add_argument("--explicit-als", action="store_true", help="also score the former explicit ALS")
    parser.add_argument("--out-json", default=None)
    args = parser.parse_args(argv)
    conf = load_config(None, overrides=args.set or None)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir("/tmp/vidrec-bench-rating-checkpoints")
    results = []
    for folder in args.raw:
        events, items, user_index, item_index = load(spark, folder)
        for spec in args.protocols.split(","):
            protocol, fraction = spec.split(":")
            start = time.perf_counter()
            fit, held, desc = split_events(events, protocol, float(fraction), conf.evaluation.seed)
            weights = conf.matrix.weights
            train = build_interactions(fit, items, user_index, item_index, weights).cache()
            test = build_interactions(held, items, user_index, item_index, weights).cache()
            found = rating_metrics(train, test, conf.rating, conf.als.num_blocks)
            if args.explicit_als:
                found["explicit_als"] = explicit_als(train, test)
            seconds = time.perf_counter() - start
            for name, errs in found.items():
                results.append(
                    {"data": Path(folder).name, "split": desc, "model": name, **errs, "seconds": seconds}
                )
            train.unpersist()
            test.unpersist()
            print(f"{folder} {desc}: done in {seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"rating: {json.dumps(conf.to_dict()['rating'])}")
    print("| data | split | model | RMSE | MAE | rated test pairs |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for r in results:
        cells = [r["data"], r["split"], r["model"], f"{r['rmse']:.4f}", f"{r['mae']:.4f}", f"{int(r['n']):,}"]
        print("| " + " | ".join(cells) + " |")
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(results, indent=1))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
