"""Convert a MovieLens folder (ML-100k, ML-1M, ML-latest/20M or RecBole atomic files) to raw input.

Usage::

    python jobs/convert_movielens.py --src data/ml-100k-src --out data/ml-100k

writes ``events.parquet`` (or ``.jsonl``), ``items.jsonl`` and ``users.csv`` into ``--out``, ready for
``jobs/ingest.py --raw`` / ``jobs/nightly.py --raw``. No Spark: the MovieLens files fit in memory.
"""

from __future__ import annotations

import argparse
import logging
import sys

from vidrec.devdata.movielens import EVENTS_FORMATS, FORMATS, convert_movielens

log = logging.getLogger("vidrec.jobs.convert_movielens")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="folder with the MovieLens files")
    parser.add_argument("--out", required=True, help="raw folder to write")
    parser.add_argument("--format", choices=FORMATS, default=None, help="source format (default: detect)")
    parser.add_argument("--events-format", choices=EVENTS_FORMATS, default="parquet")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the conversion; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        summary = convert_movielens(args.src, args.out, fmt=args.format, events_format=args.events_format)
    except (OSError, ValueError) as exc:
        log.error("conversion failed: %s", exc)
        return 1
    log.info(
        "%s -> %s: %d rate events, %d users, %d items",
        summary.fmt,
        args.out,
        summary.n_events,
        summary.n_users,
        summary.n_items,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
