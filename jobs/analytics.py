"""Build the analysts' gold tables for one run date.

    python jobs/analytics.py --warehouse ./warehouse --run-date 2026-03-31 [--conf conf/local.yaml]

Reads ``bronze/events``, ``silver/items``, ``silver/users`` and (when present)
``gold/recommendations``, and replaces the run date's partition of every table in
``vidrec.analytics.ANALYTICS_TABLES``. Runs unchanged under ``spark-submit``. Exit code 0 on success.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from vidrec.analytics import DEFAULT_DAYS, write_all
from vidrec.config import load_config
from vidrec.session import build_spark

log = logging.getLogger("vidrec.jobs.analytics")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``--warehouse``, ``--run-date``, ``--conf``, ``--days``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, help="Delta warehouse root")
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--conf", default=None, help="environment config file (default conf/local.yaml)")
    parser.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help=f"event-date window of the daily tables (default {DEFAULT_DAYS})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the analytics stage; returns the process exit code."""
    args = parse_args(argv)
    conf = load_config(args.conf, overrides={"warehouse": args.warehouse})
    logging.basicConfig(
        level=conf["logging"]["level"], format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spark = build_spark(conf)
    written = write_all(spark, conf["warehouse"], args.run_date, days=args.days)
    log.info("analytics %s done: %s", args.run_date, ", ".join(f"{k}={v}" for k, v in written.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
