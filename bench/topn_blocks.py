"""`vidrec.models.topn.top_n_from_factors` at one shape with two CPU block sizes, interleaved.

    .venv/bin/python bench/topn_blocks.py [--users 123526] [--items 26975] [--seen 18] \
        [--floats 6000000,1000000] [--repeats 3] [--out-json FILE]

Random rank-64 factors and seen pairs (the 20M bench shape by default), a ``local[2]`` session of the
project's configuration, every run written to Spark's noop sink after one warm-up run; the block sizes
are given as scores per block (``cpu_block_floats``: 6M is 222 users at 27k items, 1M is 37). Prints
median (min-max) seconds per size and the ratio of the first to the second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=123_526)
    parser.add_argument("--items", type=int, default=26_975)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--seen", type=int, default=18, help="seen pairs per user (before de-duplication)")
    parser.add_argument(
        "--floats", default="6000000,1000000", help="two scores-per-block sizes, comma-separated"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-json")
    args = parser.parse_args(argv)
    sizes = [int(b) for b in args.floats.split(",")]
    if len(sizes) != 2 or min(sizes) < 1:
        parser.error(f"--floats: two positive sizes, got '{args.floats}'")

    from pyspark.sql import functions as F

    from vidrec.config import load_config
    from vidrec.models.topn import top_n_from_factors
    from vidrec.pipeline.session import build_spark

    spark = build_spark(load_config(overrides={"warehouse": "/tmp/vidrec-topn-blocks"}))
    rng = np.random.default_rng(0)

    def factors(n: int, col: str):  # type: ignore[no-untyped-def]
        rows = [(i, rng.standard_normal(args.rank).astype(np.float32).tolist()) for i in range(n)]
        return spark.createDataFrame(rows, f"{col} int, features array<float>")

    users = factors(args.users, "user_idx").repartition(2).cache()
    items = factors(args.items, "item_idx").cache()
    seen = (
        spark.range(args.users * args.seen)
        .select(
            (F.col("id") % args.users).cast("int").alias("user_idx"),
            F.pmod(F.xxhash64("id"), F.lit(args.items)).cast("int").alias("item_idx"),
        )
        .distinct()
        .cache()
    )
    print(f"users {users.count()}, items {items.count()}, seen pairs {seen.count()}", flush=True)

    def run(size: int) -> float:
        start = time.perf_counter()
        recs = top_n_from_factors(spark, users, items, seen, 50, cpu_block_floats=size)
        recs.write.format("noop").mode("overwrite").save()
        return round(time.perf_counter() - start, 3)

    run(sizes[0])  # warm-up: the Python workers, the JIT, the cached frames
    times: dict[int, list[float]] = {b: [] for b in sizes}
    for rep in range(args.repeats):
        for size in sizes if rep % 2 == 0 else sizes[::-1]:
            times[size].append(run(size))
            print(f"{size:,} scores a block: {times[size][-1]} s", flush=True)
    spark.stop()
    out: dict[str, object] = {
        str(b): {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
        for b, v in times.items()
    }
    out["ratio"] = round(statistics.median(times[sizes[0]]) / statistics.median(times[sizes[1]]), 3)
    print(json.dumps(out))
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
