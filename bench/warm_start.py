"""Warm start against a cold fit: the quality of the next night's lists, each way, on the same events.

    .venv/bin/python bench/warm_start.py --raw data/sample-ahead --night-date 2026-03-31 \
        [--horizon-days 7] [--workdir DIR] [--set key=value ...] [--out-json FILE]

``--raw`` must hold events after ``--night-date`` (``make sample`` with a later ``DEMO_DATE``). Night 1
runs the day before ``--night-date`` on a fresh warehouse (the first load: every model fitted from
scratch, the offline evaluation). The warehouse is then copied, and night 2 (``--night-date``) runs on
each copy: once with ``deep.train.warm_start=true`` (the deep models fine-tune from night 1's fit for
at most ``deep.train.warm_epochs``), once with ``deep.train.warm_start=false`` (every model from
scratch, the default), and once more from scratch per ``--cold-seeds`` seed (``deep.train.seed``): how
far two cold fits of the same night land apart, the yardstick for the warm start's difference.
``--evaluation-night`` measures the offline evaluation's night instead (the first night of a
warehouse, the weekly full retrain): night 1 is ``--night-date`` itself with the ingest, matrix and
evaluate stages only (the evaluation's fits); the warehouse is copied, and the recommend, popular and
analytics stages run on each copy: "warm" with ``deep.train.warm_from_evaluation=true`` (the served
deep models fine-tune tonight's evaluation fits), "cold" with it false (a second fit from scratch),
and the ``--cold-seeds`` sides cold. The night-2 wall times are then those stages' only.
A third run on each copy, ``--horizon-days`` later and with the ingest, matrix and evaluate stages
only, scores night 2's served lists of every algorithm against the pairs first engaged with since
(the nightly's served-list check, split ``served_next_day``). Both sides are scored on the same
events; the script prints NDCG@k per algorithm, warm against cold, and night 2's wall time each way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from second_night import night  # noqa: E402  (a sibling script, not a package)


def served_scores(warehouse: Path, run_date: dt.date) -> dict[str, dict[str, float]]:
    """``{algorithm: {metric: value}}`` of the served-list check of ``run_date`` in ``gold/model_metrics``."""
    from pyspark.sql import functions as F

    from vidrec import constants as C
    from vidrec.config import load_config
    from vidrec.data import tables
    from vidrec.pipeline.session import build_spark

    spark = build_spark(load_config(None, overrides={"warehouse": str(warehouse)}))
    rows = (
        tables.read(spark, str(warehouse), C.T_MODEL_METRICS)
        .where((F.col(C.COL_RUN_DATE) == F.lit(run_date)) & (F.col(C.COL_SPLIT) == "served_next_day"))
        .select(C.COL_ALGORITHM, C.COL_METRIC, C.COL_K, C.COL_VALUE)
        .collect()
    )
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        key = r[C.COL_METRIC] + (f"@{r[C.COL_K]}" if r[C.COL_K] else "")
        out.setdefault(r[C.COL_ALGORITHM], {})[key] = round(float(r[C.COL_VALUE]), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", required=True)
    parser.add_argument("--night-date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--horizon-days", type=int, default=7)
    parser.add_argument("--workdir", default="/tmp/vidrec-warm-start")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument(
        "--cold-seeds", default="", help="comma-separated deep.train.seed values: one more cold side each"
    )
    parser.add_argument(
        "--evaluation-night", action="store_true", help="warm from the same night's evaluation fits"
    )
    parser.add_argument("--out-json")
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    day1, day2 = args.night_date - dt.timedelta(days=1), args.night_date
    score_day = day2 + dt.timedelta(days=args.horizon_days)
    switch, night2_stages = "deep.train.warm_start", None
    if args.evaluation_night:  # night 1 is the same date's first stages: the evaluation's fits
        day1, switch, night2_stages = day2, "deep.train.warm_from_evaluation", "recommend,popular,analytics"
        first = night(args.raw, work / "warm", day1, args.set, "ingest,matrix,evaluate", work / "night1.log")
    else:
        first = night(args.raw, work / "warm", day1, args.set, log=work / "night1.log")
    shutil.copytree(work / "warm", work / "cold", symlinks=True)
    sides = {"warm": [*args.set, f"{switch}=true"], "cold": [*args.set, f"{switch}=false"]}
    for seed in (s.strip() for s in args.cold_seeds.split(",") if s.strip()):
        sides[f"cold-seed{seed}"] = [*sides["cold"], f"deep.train.seed={int(seed)}"]
        shutil.copytree(work / "warm", work / f"cold-seed{seed}", symlinks=True)
    seconds: dict[str, dict[str, object]] = {}
    for side in sides:
        wh = work / side
        seconds[side] = night(args.raw, wh, day2, sides[side], night2_stages, work / f"night2-{side}.log")
        # score night 2's lists only: no offline evaluation, no new lists
        night(
            args.raw,
            wh,
            score_day,
            [*sides[side], "evaluation.every_days=3650"],
            stages="ingest,matrix,evaluate",
            log=work / f"score-{side}.log",
        )
    # read once every night has ended: this process's Spark session never runs beside a nightly's
    served = {side: served_scores(work / side, score_day) for side in sides}
    cold = served["cold"]
    key = next((k for k in next(iter(cold.values()), {}) if k.startswith("ndcg@")), "ndcg@10")
    print(f"night 2's lists scored on {score_day} (pairs first engaged with after {day2}), {key}")
    others = [side for side in sides if side != "cold"]
    print(f"{'algorithm':<14}{'cold':>9}" + "".join(f"{s:>13}{'/cold':>7}" for s in others) + f"{'users':>8}")
    ratios: dict[str, dict[str, float]] = {side: {} for side in others}
    for algo in sorted(cold):
        c = cold[algo].get(key, float("nan"))
        line = f"{algo:<14}{c:>9.4f}"
        for side in others:
            v = served[side].get(algo, {}).get(key, float("nan"))
            ratios[side][algo] = round(v / c, 4) if c else float("nan")
            line += f"{v:>13.4f}{ratios[side][algo]:>7.3f}"
        print(line + f"{int(cold[algo].get('users_evaluated', 0)):>8}")
    walls = ", ".join(f"{side} {seconds[side]['wall_s']} s" for side in sides)
    print(f"night 2 wall: {walls}; night 1 {first['wall_s']} s")
    result = {
        "first_night": first,
        "score_date": score_day.isoformat(),
        **{side: {"second_night": seconds[side], "served": served[side]} for side in sides},
        **{f"{side}_vs_cold_ndcg": ratios[side] for side in others},  # warm_vs_cold_ndcg first
    }
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
