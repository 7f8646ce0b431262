"""spark-submit entry point: train one deep model (features -> shards -> DDP via TorchDistributor).

    python jobs/train_deep.py --model ncf --warehouse ./warehouse --run-date 2026-03-31 \
        [--conf conf/local.yaml] [--num-processes 2] [--use-gpu]

Reads the silver tables through ``vidrec.pipeline.build_fit_context`` (the nightly's context
builder), fits the model with ``vidrec.models.deep.launch.fit`` and prints the training metrics as JSON.
Exit code 0 on success, 2 on a configuration error, 1 when training fails, 3 when another job holds
the warehouse's lease (``--wait SECONDS`` waits for it), 4 when the lease table is malformed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence

from vidrec.cli.common import add_wait, with_lease

MODELS = ("ncf", "multvae", "sequence", "gru", "text", "fusion")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The job's flags."""
    parser = argparse.ArgumentParser(
        prog="train_deep", description="Train one deep recommender data-parallel."
    )
    parser.add_argument("--model", required=True, choices=MODELS)
    parser.add_argument("--warehouse", required=True, help="Delta warehouse root")
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--conf", help="environment config file (default conf/local.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable"
    )
    parser.add_argument("--num-processes", type=int, help="DDP processes (default deep.launch.num_processes)")
    parser.add_argument(
        "--use-gpu", action="store_true", help="train on GPUs (NCCL); TorchDistributor use_gpu=True"
    )
    add_wait(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from vidrec.cli.common import warehouse_override
    from vidrec.config import ConfigError, load_config

    try:
        conf = load_config(args.conf, [*args.set, *warehouse_override(args.warehouse)])
    except ConfigError as exc:
        print(f"train_deep: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=conf.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    from vidrec.models.deep.launch import fit
    from vidrec.pipeline import build_fit_context  # the lead's context builder (imported lazily)
    from vidrec.pipeline.session import build_spark

    try:
        spark = build_spark(conf)
    except ConfigError as exc:
        print(f"train_deep: configuration error: {exc}", file=sys.stderr)
        return 2

    def work(_held: object) -> int:
        try:
            ctx = build_fit_context(spark, conf, args.run_date)
            result = fit(
                spark,
                args.model,
                ctx,
                num_processes=args.num_processes,
                use_gpu=True if args.use_gpu else None,
            )
        except Exception as exc:  # the job reports and exits non-zero; the traceback is in the log
            logging.getLogger("train_deep").exception("train_deep %s failed: %s", args.model, exc)
            return 1
        summary = {k: v for k, v in result.metrics.items() if k != "history"}
        summary["artifact_dir"] = result.artifact_dir
        summary["shards"] = {k: v.to_dict() for k, v in result.shards.items()}
        print(json.dumps(summary, indent=2, default=str))
        return 0

    try:
        return with_lease("train_deep", spark, conf, f"train_deep {args.model}", args.wait, work)
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
