"""The deep models' feature shards written by Spark against written by the driver, on a real warehouse.

    .venv/bin/python bench/shard_writes.py --warehouse WH [--conf CONF] [--run-date YYYY-MM-DD] \\
        [--repeats 5] [--out-json bench/shard_writes.json]

Every deep model of the configuration's ``models`` has its training frames built
(:func:`vidrec.models.deep.features.training_frames`, from the warehouse's fit context of
``--run-date``) and computed once (checkpointed, not timed). Then each frame is written both ways
with :func:`vidrec.models.deep.shards.write_shards`, interleaved, ``--repeats`` times each, in one
warm local Spark session:

- ``spark`` (``driver_max_rows=0``, the only way until this change): a round-robin repartition into
  the planned row groups and Spark's Parquet write;
- ``driver`` (the default up to ``DRIVER_WRITE_MAX_ROWS`` rows and a local folder): the rows collected
  through Arrow, dealt round-robin into the same number of files by pyarrow.

Both times include the row count and checksum job and the footer read that follow every write; both
ways must write the same rows, row groups and checksum (checked on every repeat). Median (min-max)
of the repeats per frame, and per model the sum of its frames' medians; the machine's facts go with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import sys
from pathlib import Path
from typing import Any

from vidrec.config import load_config
from vidrec.data.frames import materialise, release
from vidrec.models.deep import features, shards
from vidrec.models.deep.launch import MODEL_CLASSES, data_sizes
from vidrec.models.deep.params import model_params
from vidrec.models.deep.schema import ITEMS
from vidrec.pipeline.context import build_fit_context
from vidrec.pipeline.session import build_spark

sys.path.insert(0, str(Path(__file__).resolve().parent))
from item_models import interleaved  # noqa: E402  (sibling scripts of bench/)
from run import machine_facts  # noqa: E402


def same_shards(a: shards.ShardInfo, b: shards.ShardInfo) -> bool:
    return (a.rows, a.row_groups, a.checksum) == (b.rows, b.row_groups, b.checksum)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--conf", default=None)
    ap.add_argument("--run-date", default="2026-03-31")
    ap.add_argument("--processes", type=int, default=2, help="training processes the shards are for")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out-json", default="bench/shard_writes.json")
    args = ap.parse_args()
    conf = load_config(args.conf, [f"warehouse={args.warehouse}"])
    spark = build_spark(conf)
    ctx = build_fit_context(spark, conf, dt.date.fromisoformat(args.run_date))
    sizes = data_sizes(ctx.interactions, ctx.items)
    lp = conf.deep.launch
    work = Path(args.warehouse) / "features" / "_bench_shard_writes"
    models: list[dict[str, Any]] = []
    for name in [m for m in conf.models if m in MODEL_CLASSES]:
        mp = model_params(conf.deep, name, conf.evaluation.protocol)
        frames = features.training_frames(
            name, ctx.interactions, ctx.items, mp, sizes["visual_dim"], sizes["audio_dim"]
        )
        splits: dict[str, Any] = {}
        for split, frame in frames.items():
            frame = materialise(frame)
            procs = 1 if split == ITEMS else args.processes
            groups = int(lp.min_row_groups_per_process) if split != ITEMS else 1
            cases = {
                way: functools.partial(
                    shards.write_shards,
                    frame,
                    str(work / name / way / split),
                    procs,
                    int(lp.rows_per_row_group),
                    groups,
                    driver_max_rows=limit,
                )
                for way, limit in (("spark", 0), ("driver", shards.DRIVER_WRITE_MAX_ROWS))
            }
            times, info = interleaved(cases, args.repeats, same_shards, f"{name} {split}")
            splits[split] = {"rows": info.rows, "row_groups": info.row_groups, **times}
            release(frame)
        total = {w: round(sum(s[w]["median"] for s in splits.values()), 3) for w in ("spark", "driver")}
        row = {"model": name, "splits": splits, "sum_of_medians": total}
        print(json.dumps(row), flush=True)
        models.append(row)
    out = {
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "warehouse": args.warehouse,
        "machine": machine_facts(),
        "models": models,
        "sum_of_medians": {
            w: round(sum(m["sum_of_medians"][w] for m in models), 3) for w in ("spark", "driver")
        },
    }
    Path(args.out_json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {args.out_json}")


if __name__ == "__main__":
    main()
