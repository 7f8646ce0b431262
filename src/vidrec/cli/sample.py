"""Generate the deterministic synthetic sample: ``items.jsonl``, ``users.csv`` and ``events.jsonl/``.

Usage::

    python jobs/generate_sample.py --out data/sample --users 2000 --items 600 --days 60 \\
        --end-date 2026-03-31 [--seed 42] [--bad-fraction 0.0] [--events-per-user-mean 40] \\
        [--lang en|zh] [--media-taste 0.0] [--master local[2]] [--conf FILE]

Events are simulated on Spark (see :mod:`vidrec.devdata.sample`); the same flags give the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time

from vidrec.config import ConfigError, load_config
from vidrec.devdata.sample import generate
from vidrec.pipeline.session import build_spark

log = logging.getLogger("vidrec.generate_sample")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--end-date must be YYYY-MM-DD, got '{text}'") from exc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write (created if needed; outputs replaced)")
    parser.add_argument("--users", type=int, required=True, help="number of users")
    parser.add_argument("--items", type=int, required=True, help="number of catalog items")
    parser.add_argument("--days", type=int, required=True, help="days of events, ending at --end-date")
    parser.add_argument("--end-date", type=_date, required=True, help="last day of events, YYYY-MM-DD")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-fraction", type=float, default=0.0, help="share of garbage event lines")
    parser.add_argument("--events-per-user-mean", type=float, default=40.0)
    parser.add_argument(
        "--lang",
        choices=("en", "zh"),
        default="en",
        help="catalog language: zh writes Chinese titles, genres, descriptions and names",
    )
    parser.add_argument(
        "--media-taste",
        type=float,
        default=0.0,
        help="strength of a latent taste factor beyond genre that media embeddings carry (0: none)",
    )
    parser.add_argument(
        "--partitions", type=int, default=None, help="Spark partitions (default: from --users)"
    )
    parser.add_argument("--master", default=None, help="Spark master (default: conf spark.master)")
    parser.add_argument("--conf", default=None, help="environment config file (default conf/local.yaml)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate the sample; return the process exit code."""
    args = parse_args(argv)
    try:
        conf = load_config(args.conf, overrides={"spark": {"master": args.master}} if args.master else None)
    except ConfigError as exc:
        print(f"generate_sample: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=conf.logging.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    spark = build_spark(conf)
    try:
        counts = generate(
            spark,
            args.out,
            n_users=args.users,
            n_items=args.items,
            days=args.days,
            end_date=args.end_date,
            seed=args.seed,
            bad_fraction=args.bad_fraction,
            events_per_user_mean=args.events_per_user_mean,
            num_partitions=args.partitions,
            lang=args.lang,
            media_taste=args.media_taste,
        )
    except ValueError as exc:
        log.error("generate_sample: %s", exc)
        return 2
    finally:
        spark.stop()
    log.info(
        "wrote %s: %d items, %d users, %d event lines (%d garbage) in %.1f s",
        args.out,
        counts["items"],
        counts["users"],
        counts["events"],
        counts["bad_events"],
        time.perf_counter() - t0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
