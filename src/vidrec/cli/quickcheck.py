"""Quick check: do the deep models beat popularity on generated data? Prints NDCG@10 and throughput.

Generates a sample with :mod:`vidrec.devdata.sample` (unless the warehouse already holds one), ingests it,
builds the matrix, then runs the project's own offline protocol (:func:`vidrec.evaluation.evaluate.evaluate`:
time cut-off split, same relevance and metrics as the nightly) for ``popularity`` and the deep
models, each trained through TorchDistributor exactly as in production::

    python -m vidrec.cli.quickcheck --workdir /tmp/vidrec-quick --models ncf,multvae

Takes a few minutes on 2 cores for the default 2000 users x 600 items.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidrec import constants as C
from vidrec.config import Config


def _prepare(
    spark: Any, conf: Config, workdir: Path, users: int, items: int, days: int, run_date: dt.date
) -> None:
    from vidrec.data import ingest, matrix, tables
    from vidrec.devdata import sample

    if tables.exists(spark, conf.warehouse, C.T_INTERACTIONS):
        return
    raw = workdir / "raw"
    print(sample.generate(spark, str(raw), users, items, days, run_date, seed=42))
    ingest.run(spark, conf, str(raw), run_date)
    matrix.run(spark, conf, run_date)


def run(
    workdir: str,
    models: Sequence[str],
    users: int = 2000,
    items: int = 600,
    days: int = 60,
    run_date: dt.date = dt.date(2026, 3, 31),
    num_processes: int = 2,
) -> dict[str, dict[str, float]]:
    """Evaluate ``popularity`` and ``models`` on a generated sample; returns ``{algorithm: metrics}``.

    Metrics are ``ndcg``, ``recall``, ``precision`` at 10 and, for deep models, ``rows_per_s`` per
    process, ``epochs`` and ``train_seconds`` (TorchDistributor wall time).
    """
    from vidrec.config import load_config
    from vidrec.evaluation import evaluate
    from vidrec.pipeline.session import build_spark

    root = Path(workdir).resolve()
    conf = load_config(
        overrides={
            "warehouse": str(root / "warehouse"),
            "spark": {"master": "local[2]", "shuffle_partitions": 4, "driver_memory": "3g"},
            "deep": {"launch": {"num_processes": num_processes}},
        }
    )
    spark = build_spark(conf)
    _prepare(spark, conf, root, users, items, days, run_date)
    algos = [C.ALGO_POPULARITY, *models]
    work = root / "eval"
    start = time.perf_counter()
    rows = evaluate.evaluate_warehouse(spark, conf, algos, run_date, str(work)).collect()
    out = summarise(rows, algos, work)
    out["_total"] = {"seconds": time.perf_counter() - start}
    return out


def summarise(rows: Sequence[Any], algos: Sequence[str], work: Path) -> dict[str, dict[str, float]]:
    """``{algorithm: metrics}`` from ``gold/model_metrics`` rows of one evaluation (the whole split,
    not its cold slices) and each deep model's ``<work>/<model>/metrics.json`` (training throughput)."""
    out: dict[str, dict[str, float]] = {a: {} for a in algos}
    for r in rows:
        if ":" in r[C.COL_SPLIT]:  # a slice (cold users, cold items) of the split, not the split
            continue
        if r[C.COL_METRIC] in ("ndcg", "recall", "precision", "coverage") and r[C.COL_K] == 10:
            out[r[C.COL_ALGORITHM]][r[C.COL_METRIC]] = float(r[C.COL_VALUE])
    for algo in algos:
        metrics_file = work / algo / "metrics.json"
        if metrics_file.is_file():
            m = json.loads(metrics_file.read_text())
            out[algo]["rows_per_s"] = float(m["rows_per_s_per_process"])
            out[algo]["epochs"] = float(m["epochs_done"])
            out[algo]["train_seconds"] = float(m["seconds"])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of :func:`run`; prints one line per algorithm."""
    parser = argparse.ArgumentParser(
        prog="python -m vidrec.cli.quickcheck", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workdir", default="/tmp/vidrec-deep-quickcheck")
    parser.add_argument("--models", default="ncf,multvae")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--num-processes", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    result = run(
        args.workdir,
        [m for m in args.models.split(",") if m],
        args.users,
        args.items,
        num_processes=args.num_processes,
    )
    base = result[C.ALGO_POPULARITY].get("ndcg", 0.0)
    print(
        f"{'algorithm':<12}{'ndcg@10':>10}{'vs pop':>9}{'recall@10':>11}"
        f"{'rows/s/proc':>13}{'epochs':>8}{'train s':>9}"
    )
    for algo, m in result.items():
        if algo.startswith("_"):
            continue
        ratio = m.get("ndcg", 0.0) / base if base else float("nan")
        print(
            f"{algo:<12}{m.get('ndcg', 0.0):>10.4f}{ratio:>8.2f}x{m.get('recall', 0.0):>11.4f}"
            f"{m.get('rows_per_s', float('nan')):>13.0f}{m.get('epochs', float('nan')):>8.0f}"
            f"{m.get('train_seconds', float('nan')):>9.1f}"
        )
    print(f"total {result['_total']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
