"""The served list's diversity trade-off: the hybrid at several ``hybrid.mmr_lambda`` on one evaluation split.

    PYTHONPATH=src .venv/bin/python bench/mmr.py --warehouse W --run-date YYYY-MM-DD [--conf FILE] \\
        [--protocol random --fraction 0.25] [--lambdas 1,0.9,0.8,0.7,0.5] [--max-per-genre 0] \\
        [--out-json FILE]

The warehouse must hold the matrix (``silver``) and, for the blend, a learned blend of the protocol in
``ops/blend_weights`` (``jobs/evaluate.py`` leaves one; without it, ``hybrid.weights``). The events are
split as the offline evaluation splits them (:func:`vidrec.evaluation.context.holdout` with
``evaluation.seed``); the blend's components are fitted once on the fit side; then
:func:`vidrec.serving.hybrid.blend` (tiers, segment lists, seen and maturity filters, MMR) runs once per
``mmr_lambda``, and every list is scored in one job by the evaluation's metrics: NDCG, precision and
recall at ``evaluation.k`` on the held-out side, intra-list genre diversity, catalog coverage and
novelty. Prints one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time

from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import load_config
from vidrec.data import matrix, tables
from vidrec.evaluation import metrics
from vidrec.evaluation.blend_weights import latest_choice
from vidrec.evaluation.context import holdout
from vidrec.evaluation.evaluate import union_all
from vidrec.pipeline.session import build_spark
from vidrec.serving.candidates import fit_all
from vidrec.serving.hybrid import NEW_ITEMS, BlendChoice, blend


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warehouse", required=True)
    p.add_argument("--run-date", required=True, type=dt.date.fromisoformat)
    p.add_argument("--conf", default=None)
    p.add_argument("--protocol", default="random")
    p.add_argument("--fraction", type=float, default=0.25)
    p.add_argument("--lambdas", default="1,0.9,0.8,0.7,0.5")
    p.add_argument("--max-per-genre", type=int, default=0)
    p.add_argument("--out-json", default=None)
    a = p.parse_args(argv)
    conf = load_config(a.conf, overrides={"warehouse": a.warehouse})
    spark = build_spark(conf)
    wh, hc, k = a.warehouse, conf.hybrid, conf.evaluation.k
    users = tables.read(spark, wh, C.T_USERS)
    user_index, item_index = tables.read(spark, wh, C.T_USER_INDEX), tables.read(spark, wh, C.T_ITEM_INDEX)
    h = holdout(
        spark,
        conf,
        matrix.events_up_to(spark, wh, a.run_date),
        tables.read(spark, wh, C.T_ITEMS),
        users,
        user_index,
        item_index,
        protocol=a.protocol,
        fraction=a.fraction,
        seed=conf.evaluation.seed,
        run_date=a.run_date.isoformat(),
        work_dir=f"{wh}/{C.MODELS}/{a.run_date.isoformat()}/mmr",
        n=max(k, hc.pool_n),
        explain=False,
    )
    ctx = h.ctx
    stored = latest_choice(spark, wh, a.run_date, a.protocol)
    choice = stored if stored is not None else BlendChoice.from_conf(hc, hc.components())
    components = sorted(c for c, w in choice.weights.items() if w > 0 and c != NEW_ITEMS)
    cold = sorted(c for c, w in hc.cold_weights.items() if w > 0 and c not in (NEW_ITEMS, C.ALGO_POPULARITY))
    fit_names = sorted(set(components) | set(cold))
    source = choice.version or "hybrid.weights"
    print(f"blend {source}: {choice.weights} ({choice.score_norm}, rrf_k {choice.rrf_k})")
    start = time.perf_counter()
    fitted = fit_all(ctx, fit_names, stage="mmr")
    print(f"{len(fitted)} components fitted in {time.perf_counter() - start:.1f} s", flush=True)
    lists, seconds = [], {}
    for lam in [float(x) for x in a.lambdas.split(",")]:
        start = time.perf_counter()
        conf_l = dataclasses.replace(
            hc,
            score_norm=choice.score_norm,
            rrf_k=int(choice.rrf_k),
            mmr_lambda=lam,
            max_per_genre=int(a.max_per_genre),
        )
        recs = blend(ctx, fitted, {**hc.weights, **choice.weights}, conf_l).recs
        label = f"{lam:g}"
        lists.append(
            recs.select(F.lit(label).alias(C.COL_ALGORITHM), C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_RANK)
        )
        seconds[label] = round(time.perf_counter() - start, 1)
        print(f"mmr_lambda {label}: blended in {seconds[label]} s", flush=True)
    recs = union_all(lists).cache()
    ranking = {
        r[C.COL_ALGORITHM]: r
        for r in metrics.ranking_metrics_table(recs, h.relevant_known, k, [C.COL_ALGORITHM]).collect()
    }
    positive = ctx.interactions.where(F.col(C.COL_CONFIDENCE) > 0).select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    beyond = {
        r[C.COL_ALGORITHM]: r
        for r in metrics.beyond_accuracy_table(
            recs, ctx.items, positive, item_index.count(), k, [C.COL_ALGORITHM]
        ).collect()
    }
    rows = []
    print(f"\n{h.description}, k={k}, max_per_genre {a.max_per_genre}")
    print("| mmr_lambda | NDCG@10 | precision | recall | genre diversity | coverage | novelty | blend s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in seconds:
        r, b = ranking[label], beyond[label]
        row = {
            "mmr_lambda": float(label),
            "ndcg": r["ndcg"],
            "precision": r["precision"],
            "recall": r["recall"],
            "diversity": b["diversity"],
            "coverage": b["coverage"],
            "novelty": b["novelty"],
            "seconds": seconds[label],
        }
        rows.append(row)
        print(
            f"| {label} | {row['ndcg']:.4f} | {row['precision']:.4f} | {row['recall']:.4f} | "
            f"{row['diversity']:.4f} | {row['coverage']:.4f} | {row['novelty']:.3f} | {row['seconds']} |"
        )
    if a.out_json:
        with open(a.out_json, "w") as f:
            json.dump({"split": h.description, "blend": choice.weights, "rows": rows}, f, indent=1)
    recs.unpersist()
    h.release()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
