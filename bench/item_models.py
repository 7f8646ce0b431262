"""The item-item models' Spark joins against their driver-side sparse blocks, on real warehouses.

    .venv/bin/python bench/item_models.py --warehouse WH[=CONF] [--warehouse ...] [--repeats 5] \\
        [--out-json bench/item_models.json]

Each case runs both ways on the same inputs, interleaved, ``--repeats`` times each, in one warm local
Spark session, and both must give the same result (checked on every repeat). Median (min-max) of the
repeats; the machine's facts go with them.

**EASE's Gram matrix** of a warehouse's positive interactions (``silver/interactions`` rows with
``confidence > 0``):

- ``self-join`` (the fit until this change): the pairs self-joined on the user in Spark, ``i <= j``
  kept, summed per item pair, collected into a dense matrix;
- ``collected`` (:func:`vidrec.models.ease.gram_from_pairs`): the pairs collected once through Arrow,
  then counted on the driver in item blocks of sparse CSR/CSC arrays.

Both times include everything from the interactions to the dense matrix (the read of the cached
positives, the collect, the counting); the matrices must be equal.

**Item-kNN's lists** (top 50 per user from the capped histories and the neighbours of the warehouse's
``itemknn`` configuration, every pair of the interactions excluded as seen; the neighbours computed
once, not timed):

- ``join`` (the fit until this change, kept above ``itemknn.blocked_max_pairs`` neighbour rows:
  :func:`vidrec.models.itemknn.joined_scores`): the histories joined with the neighbours in Spark,
  summed per (user, item), the seen pairs anti-joined, ranked per user by a window;
- ``blocked`` (:func:`vidrec.models.itemknn.score_users`): the neighbours broadcast as sparse rows, each
  task scoring blocks of users in numpy.

Both are timed to a count of the lists; the lists must hold the same (user, rank) scores (to 1e-9:
float sums in another order may swap items whose scores tie).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import Config, load_config
from vidrec.data import tables
from vidrec.models import itemknn
from vidrec.models.ease import gram_from_pairs
from vidrec.pipeline.session import build_spark

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blend_search import summary  # noqa: E402  (sibling scripts of bench/)
from run import machine_facts  # noqa: E402


def self_join_gram(positives: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: the Spark self-join the EASE fit used before (same columns, same dense result)."""
    cols = np.array(sorted(r[0] for r in positives.select(C.COL_ITEM_IDX).distinct().collect()), np.int64)
    left = positives.select(F.col(C.COL_USER_IDX).alias("u"), F.col(C.COL_ITEM_IDX).alias("i"))
    right = left.select("u", F.col("i").alias("j"))
    pairs = (
        left.join(right, "u").where(F.col("i") <= F.col("j")).groupBy("i", "j").agg(F.count("*").alias("g"))
    ).toPandas()
    pos_i = np.searchsorted(cols, pairs["i"].to_numpy())
    pos_j = np.searchsorted(cols, pairs["j"].to_numpy())
    gram = np.zeros((len(cols), len(cols)))
    gram[pos_i, pos_j] = pairs["g"].to_numpy()
    gram[pos_j, pos_i] = pairs["g"].to_numpy()
    return cols, gram


def collected_gram(positives: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    pairs = positives.toPandas()
    return gram_from_pairs(pairs[C.COL_USER_IDX].to_numpy(), pairs[C.COL_ITEM_IDX].to_numpy())


#: List length of the item-kNN case (the nightly's ``recommend.top_n``).
LIST_LENGTH = 50


def interleaved(
    cases: dict[str, Callable[[], Any]], repeats: int, same: Callable[[Any, Any], bool], what: str
) -> tuple[dict[str, dict[str, float]], Any]:
    """Both ``cases`` ``repeats`` times, alternating which goes first; ``same`` checks their results."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    result = None
    for rep in range(repeats):
        results = {}
        for name in names[:: 1 if rep % 2 else -1]:
            t0 = time.perf_counter()
            results[name] = cases[name]()
            times[name].append(time.perf_counter() - t0)
        if not same(results[names[0]], results[names[1]]):
            raise SystemExit(f"{what}: the two ways differ (repeat {rep})")
        result = results[names[1]]
    out = {name: {k: round(v, 3) for k, v in summary(t).items()} for name, t in times.items()}
    out["speedup_median"] = round(out[names[0]]["median"] / out[names[1]]["median"], 1)  # type: ignore[assignment]
    return out, result


def same_gram(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def same_lists(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """The same users, ranks and scores (to 1e-9); items may differ only where scores tie."""
    key = [C.COL_USER_IDX, C.COL_RANK]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    return a[key].equals(b[key]) and bool(np.allclose(a[C.COL_SCORE], b[C.COL_SCORE], rtol=1e-9, atol=0))


def measure(spark: SparkSession, conf: Config, repeats: int) -> dict[str, Any]:
    """Both cases on the warehouse of ``conf``."""
    wh = conf.warehouse
    inter = tables.read(spark, wh, C.T_INTERACTIONS).cache()
    positives = inter.where(F.col(C.COL_CONFIDENCE) > 0).select(C.COL_USER_IDX, C.COL_ITEM_IDX).cache()
    n_pairs = positives.count()
    gram, (cols, _) = interleaved(
        {"self-join": lambda: self_join_gram(positives), "collected": lambda: collected_gram(positives)},
        repeats,
        same_gram,
        f"{wh}: EASE Gram",
    )
    row: dict[str, Any] = {
        "warehouse": wh,
        "positive_pairs": n_pairs,
        "items": int(len(cols)),
        "ease_gram": gram,
    }
    kc = conf.itemknn
    history = itemknn.capped_history(inter, int(kc.max_items_per_user)).cache()
    neighbours = itemknn.neighbours_from_conf(history, int(kc.neighbours), kc).cache()
    seen = inter.select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    knn: dict[str, Any] = {
        "similarity": kc.similarity,
        "neighbours": neighbours.count(),
        "history": history.count(),
    }
    lists, got = interleaved(
        {
            "join": lambda: itemknn.joined_scores(history, neighbours, seen, LIST_LENGTH).toPandas(),
            "blocked": lambda: itemknn.score_users(
                history, neighbours, seen, LIST_LENGTH, blocked_max_pairs=int(kc.blocked_max_pairs)
            ).toPandas(),
        },
        repeats,
        same_lists,
        f"{wh}: item-kNN lists",
    )
    row["itemknn"] = {**knn, "lists": len(got), **lists}
    for frame in (positives, inter, history, neighbours):
        frame.unpersist()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--warehouse", action="append", required=True, help="WH or WH=CONF (repeatable)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out-json", default="bench/item_models.json")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    spark = None
    for spec in args.warehouse:
        wh, _, conf_path = spec.partition("=")
        conf = load_config(conf_path or None, [f"warehouse={wh}"])
        spark = spark or build_spark(conf)
        row = measure(spark, conf, args.repeats)
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = {"when": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_facts(), "rows": rows}
    Path(args.out_json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {args.out_json}")


if __name__ == "__main__":
    main()
