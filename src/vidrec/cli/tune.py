"""``vidrec tune`` / ``jobs/tune.py``: hyper-parameters chosen on a validation split of the training side."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from vidrec.config.sections import PROTOCOLS
from vidrec.data import tables
from vidrec.evaluation.search import params_key
from vidrec.evaluation.trials import TRIALS_TABLE
from vidrec.evaluation.tuning import run

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """``vidrec tune`` / ``jobs/tune.py``: tune on a warehouse that ``ingest`` and ``matrix`` filled.

    Exit code 0 on success, 2 on a configuration error, 1 when tuning fails, 3 when another job holds
    the warehouse's lease (``--wait SECONDS`` waits for it), 4 when the lease table is malformed.
    """
    import argparse
    import sys

    from vidrec.cli.common import add_common, setup_logging, warehouse_override, with_lease
    from vidrec.config import ConfigError, load_config

    parser = argparse.ArgumentParser(
        prog="vidrec tune",
        description="Choose hyper-parameters on a validation split of the training side of a protocol.",
    )
    add_common(parser)
    parser.add_argument("--protocol", choices=PROTOCOLS, help="default: evaluation.protocol")
    parser.add_argument("--algorithms", help="comma-separated (default: tune.algorithms, else conf models)")
    parser.add_argument(
        "--out", help="write the tuned configuration layer here (e.g. conf/tuned/ml100k-random.yaml)"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    overrides = [*args.set, *warehouse_override(args.warehouse)]
    try:
        conf = load_config(args.conf, overrides)
    except (ConfigError, ValueError) as exc:
        print(f"vidrec tune: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.wait < 0:
        print(
            f"vidrec tune: configuration error: --wait must be >= 0 seconds, got {args.wait:g}",
            file=sys.stderr,
        )
        return 2
    setup_logging(conf.logging.level)
    from vidrec.pipeline.session import build_spark

    try:
        spark = build_spark(conf)
    except ConfigError as exc:
        print(f"vidrec tune: configuration error: {exc}", file=sys.stderr)
        return 2
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()] if args.algorithms else None

    def work(_held: object) -> int:
        try:
            result = run(spark, conf, args.run_date, args.protocol, algorithms, args.out, args.conf)
        except Exception as exc:  # reported with its traceback; the exit code says it failed
            log.exception("vidrec tune failed: %s", exc)
            return 1
        k = result.metric
        print(f"tuning ({result.protocol}; validation: {result.validation}) - chosen by {k}:")
        for algo, params in result.chosen.items():
            value = result.chosen_metrics[algo].get("ndcg", float("nan"))
            print(f"  {algo:<10} {k}={value:.4f}  {params_key(params)}")
        print(f"{len(result.trials)} trials in {tables.catalog_name(TRIALS_TABLE)}; conf: {result.conf_path}")
        return 0

    return with_lease("vidrec tune", spark, conf, "tune", args.wait, work)
