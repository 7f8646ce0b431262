"""Command line: the ``vidrec`` console command and the thin ``jobs/*.py`` entry points.

Every job takes the same flags (``--raw --warehouse --run-date --conf --set``), checks its paths,
builds the session from conf, runs its stage(s) and exits 0 only when every stage succeeded (1: a
stage failed and was rolled back; 2: bad flags or configuration, before anything is written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence

from vidrec.config import ConfigError, load_config

log = logging.getLogger("vidrec")

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


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--run-date must be YYYY-MM-DD, got '{text}'") from exc


def add_common(parser: argparse.ArgumentParser, raw_required: bool = False, run_date: bool = True) -> None:
    """The flags every stage job shares."""
    parser.add_argument(
        "--raw",
        required=raw_required,
        help="folder of raw events*/items*/users* files; '{run_date}' in it is replaced by the date",
    )
    parser.add_argument("--warehouse", help="Delta warehouse root (overrides conf 'warehouse')")
    if run_date:
        parser.add_argument("--run-date", required=True, type=_date, help="YYYY-MM-DD")
    parser.add_argument("--conf", help="environment config file (default conf/local.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable"
    )
    parser.add_argument("--use-gpu", action="store_true", help="score (and train) on the executors' GPUs")


def setup_logging(level: str = "INFO") -> None:
    """Timestamped log lines on stderr; Spark's own loggers kept quiet."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)


def run_stages(command: str, argv: Sequence[str]) -> int:
    """Run the stages of ``command`` with ``argv`` flags; returns the process exit code.

    Exit codes: 0 every stage succeeded; 1 a stage failed (the run was rolled back); 2 bad flags or
    configuration, found before Spark starts and before anything is written.
    """
    parser = argparse.ArgumentParser(prog=f"vidrec {command}", description=f"vidrec {command} stage(s)")
    add_common(parser, raw_required=command in ("nightly", "ingest"))
    if command == "nightly":
        parser.add_argument("--stages", help="comma-separated subset of stages")
        parser.add_argument(
            "--until",
            type=_date,
            help="backfill: run every date from --run-date to this one (inclusive), in order",
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
    overrides = list(args.set)
    if args.warehouse:
        overrides.append(f"warehouse={args.warehouse}")
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

    from vidrec import pipeline, preflight

    stages = COMMANDS[command] or (
        [s.strip() for s in args.stages.split(",") if s.strip()] if getattr(args, "stages", None) else None
    )
    until = getattr(args, "until", None)
    try:
        dates = pipeline.backfill_dates(args.run_date, until) if until else [args.run_date]
        reads_raw = "ingest" in (stages or pipeline.STAGE_NAMES)
        raw_dirs = [pipeline.raw_for_date(args.raw, d) for d in dates] if reads_raw else []
        preflight.check_run(conf, raw_dirs, stages, pipeline.STAGE_NAMES)
    except (ConfigError, ValueError) as exc:
        print(f"vidrec {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(conf["logging"]["level"])

    from vidrec.session import build_spark

    try:
        spark = build_spark(conf)
        preflight.check_warehouse_reachable(spark, conf["warehouse"])
    except ConfigError as exc:
        print(f"vidrec {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if until:
            done = pipeline.run_backfill(
                spark, conf, args.run_date, until, args.raw, stages, use_gpu=args.use_gpu
            )
            for day, summary in done.items():
                print(f"{day}: run {summary['_run']['run_id']} in {summary['_run']['seconds']} s")
            print(pipeline.format_summary(spark, conf["warehouse"], done[dates[-1]]))
        else:
            summary = pipeline.run_nightly(
                spark,
                conf,
                args.run_date,
                pipeline.raw_for_date(args.raw, args.run_date),
                stages,
                use_gpu=args.use_gpu,
            )
            print(pipeline.format_summary(spark, conf["warehouse"], summary))
    except Exception as exc:  # the run log and roll-back already happened
        log.error("vidrec %s for %s failed: %s", command, args.run_date, exc)
        return 1
    return 0


def backfill_main(argv: Sequence[str] | None = None) -> int:
    """``vidrec backfill --start D --end D2 --raw DIR [flags]``: the nightly for every date, in order."""
    parser = argparse.ArgumentParser(
        prog="vidrec backfill",
        description="Run the nightly for every date from --start to --end (inclusive), in date order; "
        "stops at the first failed date (rolled back) and says how to resume.",
    )
    parser.add_argument("--start", required=True, type=_date, help="first run date, YYYY-MM-DD")
    parser.add_argument("--end", required=True, type=_date, help="last run date, YYYY-MM-DD")
    add_common(parser, raw_required=False, run_date=False)
    parser.add_argument("--stages", help="comma-separated subset of stages")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    args.run_date, args.until = args.start, args.end
    return execute("nightly", args)


def main(argv: Sequence[str] | None = None) -> int:
    """``vidrec <command> [flags]``: one entry point for every stage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = {
        "backfill": "vidrec.cli:backfill_main",
        "forget_user": "vidrec.forget",
        "generate_sample": "vidrec.sample_cli",
        "train_deep": "vidrec.deep.cli",
        "tune": "vidrec.tune",
    }
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in {*COMMANDS, *extra}:
        names = ", ".join([*COMMANDS, *extra])
        print(
            f"usage: vidrec COMMAND [flags]   (COMMAND: {names}; 'vidrec COMMAND -h' for flags)",
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command in extra:
        import importlib

        module, _, func = extra[command].partition(":")
        return int(getattr(importlib.import_module(module), func or "main")(rest) or 0)
    return run_stages(command, rest)


if __name__ == "__main__":
    raise SystemExit(main())
