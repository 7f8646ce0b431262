"""What every command line shares: the common flags, date parsing and log set-up."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger("vidrec")


def report_stream() -> TextIO:
    """The stream a job's machine-readable report (JSON on stdout) goes to, kept clean of JVM output.

    Delta prints some lines with ``println`` on the JVM's stdout (VACUUM's "Deleted N files and
    directories in a total of M directories."), and the JVM that PySpark launches shares this process's
    stdout. Called before the session starts, this points file descriptor 1 at stderr, so the JVM
    inherits that, and returns a stream on the original stdout. With a JVM already running (a job
    called inside another Python program), nothing is redirected and ``sys.stdout`` is returned.
    """
    from pyspark import SparkContext

    if SparkContext._gateway is not None:
        return sys.stdout
    sys.stdout.flush()
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return report


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--run-date must be YYYY-MM-DD, got '{text}'") from exc


def flag_path(value: str) -> str:
    """A path given as a flag (``--warehouse``), absolute from the current folder as a shell user means
    it; URIs unchanged. Paths in configuration files are read from the release home instead."""
    if "://" in value or value.startswith("file:"):
        return value
    return os.path.abspath(os.path.expanduser(value))


def warehouse_override(warehouse: str | None) -> list[str]:
    """``--warehouse`` as a ``--set`` style override (none when the flag is not given)."""
    return [f"warehouse={flag_path(warehouse)}"] if warehouse else []


def add_common(parser: argparse.ArgumentParser, raw_required: bool = False, run_date: bool = True) -> None:
    """The flags every stage job shares."""
    parser.add_argument(
        "--raw",
        required=raw_required,
        help="folder of raw events*/items*/users* files; '{run_date}' in it is replaced by the date",
    )
    parser.add_argument("--warehouse", help="Delta warehouse root (overrides conf 'warehouse')")
    if run_date:
        parser.add_argument("--run-date", required=True, type=parse_date, help="YYYY-MM-DD")
    parser.add_argument("--conf", help="environment config file (default conf/local.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable"
    )
    parser.add_argument("--use-gpu", action="store_true", help="score (and train) on the executors' GPUs")
    add_wait(parser)


def add_wait(parser: argparse.ArgumentParser) -> None:
    """``--wait SECONDS``: wait for the warehouse lease instead of exiting 3 when another job holds it."""
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="when another job holds the warehouse's lease, wait up to this long for it (default 0: "
        "exit 3 at once)",
    )


def with_lease(prog: str, spark: Any, conf: Any, job: str, wait_s: float, work: Callable[[Any], int]) -> int:
    """Run ``work(lease)`` holding the warehouse lease (:mod:`vidrec.pipeline.lease`); its exit code.

    The lease is given back when ``work`` ends, also when it raises. A busy warehouse exits 3 and a
    malformed lease 4 (the message on stderr names the holder, or what is wrong); a lease lost to
    another job during the work exits 3 too.
    """
    from vidrec.pipeline import lease

    try:
        with lease.hold(spark, conf.warehouse, job, conf.lease, wait_s) as held:
            code = work(held)
            held.check()
            return code
    except lease.LeaseError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        log.error("%s: %s", prog, exc)
        return exc.exit_code


def setup_logging(level: str = "INFO") -> None:
    """Timestamped log lines on stderr; Spark's own loggers kept quiet."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
