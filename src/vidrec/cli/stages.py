"""The stage commands (``vidrec nightly|ingest|build_matrix|evaluate|...``) and ``vidrec backfill``.

Every job takes the same flags (``--raw --warehouse --run-date --conf --set``), checks its paths,
builds the session from conf, runs its stage(s) and exits 0 only when every stage succeeded (1: a
stage failed and was rolled back; 2: bad flags or configuration, before anything is written; 3: another
job holds the warehouse's lease, :mod:`vidrec.pipeline.lease`; 4: the lease table is malformed; 6: the
run finished but the publish gate held the previous lists, :mod:`vidrec.evaluation.gate`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from vidrec.cli.common import add_common, log, parse_date, setup_logging, warehouse_override, with_lease
from vidrec.config import ConfigError, load_config

#: command -> pipeline stages it runs (None: a command of its own).
COMMANDS: dict[str, list[str] | None] = {
    "nightly": None,
    "ingest": ["ingest"],
    "build_matrix": ["matrix"],
    "evaluate": ["evaluate"],
    "train_als": ["recommend"],
    "recommend": ["recommend"],
    "popular": ["popular"],
    "analytics": ["analytics"],
}


def run_stages(command: str, argv: Sequence[str]) -> int:
    """Run the stages of ``command`` with ``argv`` flags; returns the process exit code.

    Exit codes: 0 every stage succeeded; 1 a stage failed (the run was rolled back); 2 bad flags or
    configuration, found before Spark starts and before anything is written; 6 every stage succeeded
    but the publish gate held the previous lists of a date (the scheduler alerts).
    """
    parser = argparse.ArgumentParser(prog=f"vidrec {command}", description=f"vidrec {command} stage(s)")
    add_common(parser, raw_required=command in ("nightly", "ingest"))
    if command == "nightly":
        parser.add_argument("--stages", help="comma-separated subset of stages")
        parser.add_argument(
            "--until",
            type=parse_date,
            help="backfill: run every date from --run-date to this one (inclusive), in order",
        )
    if command in ("nightly", "build_matrix"):
        parser.add_argument(
            "--full-refresh",
            action="store_true",
            help="matrix: fold every event in bronze again (default: only the events ingested since the "
            "last build; a rerun of an earlier date refolds by itself)",
        )
    if command == "evaluate":
        parser.add_argument(
            "--protocol", choices=["time", "chrono", "random"], help="evaluation split protocol"
        )
        parser.add_argument("--models", help="comma-separated algorithms (default: conf models)")
    args = parser.parse_args(argv)
    return execute(command, args)


def execute(command: str, args: argparse.Namespace) -> int:
    """Load conf, check paths, build the session and run ``command`` for ``args`` (see :func:`run_stages`)."""
    overrides = [*args.set, *warehouse_override(args.warehouse)]
    if command == "train_als":
        overrides.append("models=[als]")
    if getattr(args, "protocol", None):
        overrides.append(f"evaluation.protocol={args.protocol}")
    if getattr(args, "models", None):
        overrides.append(f"models=[{args.models}]")
    try:
        conf = load_config(args.conf, overrides)
    except ConfigError as exc:
        print(f"vidrec {command}: configuration error: {exc}", file=sys.stderr)
        return 2

    from vidrec import pipeline
    from vidrec.pipeline import preflight

    stages = COMMANDS[command] or (
        [s.strip() for s in args.stages.split(",") if s.strip()] if getattr(args, "stages", None) else None
    )
    until = getattr(args, "until", None)
    try:
        dates = pipeline.backfill_dates(args.run_date, until) if until else [args.run_date]
        reads_raw = "ingest" in (stages or pipeline.STAGE_NAMES)
        raw_dirs = [pipeline.raw_for_date(args.raw, d) for d in dates] if reads_raw else []
        preflight.check_run(conf, raw_dirs, stages, pipeline.STAGE_NAMES)
        if args.wait < 0:
            raise ConfigError(f"--wait must be >= 0 seconds, got {args.wait:g}")
    except (ConfigError, ValueError) as exc:
        print(f"vidrec {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(conf.logging.level)

    from vidrec.pipeline.session import build_spark

    try:
        spark = build_spark(conf)
        preflight.check_warehouse_reachable(spark, conf.warehouse)
    except ConfigError as exc:
        print(f"vidrec {command}: configuration error: {exc}", file=sys.stderr)
        return 2

    def work(held: Any) -> int:
        try:
            if until:
                done = pipeline.run_backfill(
                    spark,
                    conf,
                    args.run_date,
                    until,
                    args.raw,
                    stages,
                    use_gpu=args.use_gpu,
                    guard=held.check,
                )
                for day, summary in done.items():
                    print(f"{day}: run {summary['_run']['run_id']} in {summary['_run']['seconds']} s")
                print(pipeline.format_summary(spark, conf.warehouse, done[dates[-1]]))
                summaries = list(done.values())
            else:
                summary = pipeline.run_nightly(
                    spark,
                    conf,
                    args.run_date,
                    pipeline.raw_for_date(args.raw, args.run_date),
                    stages,
                    use_gpu=args.use_gpu,
                    run_id=held.run_id,
                    guard=held.check,
                    full_refresh=getattr(args, "full_refresh", False),
                )
                print(pipeline.format_summary(spark, conf.warehouse, summary))
                summaries = [summary]
        except Exception as exc:  # the run log and roll-back already happened
            log.error("vidrec %s for %s failed: %s", command, args.run_date, exc)
            return 1
        for s in summaries:
            why = pipeline.held_gate(s)
            if why is not None:
                print(f"vidrec {command}: publish gate held the lists: {why}", file=sys.stderr)
        return pipeline.exit_code(summaries)

    job = "backfill" if until else command
    return with_lease(f"vidrec {command}", spark, conf, job, args.wait, work)


def backfill_main(argv: Sequence[str] | None = None) -> int:
    """``vidrec backfill --start D --end D2 --raw DIR [flags]``: the nightly for every date, in order."""
    parser = argparse.ArgumentParser(
        prog="vidrec backfill",
        description="Run the nightly for every date from --start to --end (inclusive), in date order; "
        "stops at the first failed date (rolled back) and says how to resume.",
    )
    parser.add_argument("--start", required=True, type=parse_date, help="first run date, YYYY-MM-DD")
    parser.add_argument("--end", required=True, type=parse_date, help="last run date, YYYY-MM-DD")
    add_common(parser, raw_required=False, run_date=False)
    parser.add_argument("--stages", help="comma-separated subset of stages")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    args.run_date, args.until = args.start, args.end
    return execute("nightly", args)
