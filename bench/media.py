"""What media embeddings add: fusion and content with and without them, on warm users and new titles.

    .venv/bin/python bench/media.py --workdir /tmp/vidrec-media [--users 2000] [--items 600] \\
        [--days 60] [--media-taste 1.0] [--models content,fusion]

Generates a sample whose ``visual_embedding`` / ``audio_embedding`` carry a latent taste factor beyond
genre (``--media-taste``, :func:`vidrec.devdata.sample.make_catalog`), ingests it and runs the
project's offline evaluation (:func:`vidrec.evaluation.evaluate.evaluate`, time cut-off protocol)
twice on the same split: with the catalog as it is, and with the two embedding columns dropped.
Prints NDCG@10 and recall@10 per model on the whole split (warm users) and on its ``cold_items``
slice (relevant items nobody engaged with in training: new titles), with and without, as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

from vidrec import constants as C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/vidrec-media")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--media-taste", type=float, default=1.0)
    parser.add_argument("--models", default="content,fusion")
    parser.add_argument("--num-processes", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    from vidrec.config import load_config
    from vidrec.data import ingest, matrix, tables
    from vidrec.devdata import sample
    from vidrec.evaluation import evaluate
    from vidrec.pipeline.session import build_spark

    run_date = dt.date(2026, 3, 31)
    root = Path(args.workdir).resolve()
    conf = load_config(
        overrides={
            "warehouse": str(root / "warehouse"),
            "spark": {"master": "local[2]", "shuffle_partitions": 4, "driver_memory": "3g"},
            "deep": {"launch": {"num_processes": args.num_processes}},
        }
    )
    spark = build_spark(conf)
    wh = conf.warehouse
    if not tables.exists(spark, wh, C.T_INTERACTIONS):
        raw = root / "raw"
        sample.generate(
            spark,
            str(raw),
            args.users,
            args.items,
            args.days,
            run_date,
            seed=42,
            media_taste=args.media_taste,
        )
        ingest.run(spark, conf, str(raw), run_date)
        matrix.run(spark, conf, run_date)
    algos = [C.ALGO_POPULARITY, *[m for m in args.models.split(",") if m]]
    items = tables.read(spark, wh, C.T_ITEMS)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for variant, catalog in (
        ("with_media", items),
        ("without_media", items.drop(C.COL_VISUAL_EMB, C.COL_AUDIO_EMB)),
    ):
        start = time.perf_counter()
        rows = evaluate.evaluate(
            spark,
            conf,
            matrix.events_up_to(spark, wh, run_date),
            catalog,
            tables.read(spark, wh, C.T_USERS),
            tables.read(spark, wh, C.T_USER_INDEX),
            tables.read(spark, wh, C.T_ITEM_INDEX),
            algos,
            run_date,
            str(root / f"eval-{variant}"),
        ).collect()
        for r in rows:
            if r[C.COL_METRIC] in ("ndcg", "recall") and r[C.COL_K] == 10:
                split = "new_titles" if r[C.COL_SPLIT].endswith(":cold_items") else None
                split = split or ("warm" if ":" not in r[C.COL_SPLIT] else None)
                if split:
                    key = f"{r[C.COL_ALGORITHM]}/{split}"
                    result.setdefault(key, {}).setdefault(variant, {})[r[C.COL_METRIC]] = float(
                        r[C.COL_VALUE]
                    )
        result.setdefault("_seconds", {})[variant] = {"seconds": time.perf_counter() - start}
    spark.stop()
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
