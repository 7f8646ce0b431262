"""Command line: the ``vidrec`` console command and the thin ``jobs/*.py`` entry points.

Every job takes the same flags (``--raw --warehouse --run-date --conf --set``), builds the session
from conf, runs its stage(s) and exits 0 only when every stage succeeded.
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


def add_common(parser: argparse.ArgumentParser, raw_required: bool = False) -> None:
    """The flags every stage job shares."""
    parser.add_argument("--raw", required=raw_required, help="folder of raw events*/items*/users* files")
    parser.add_argument("--warehouse", help="Delta warehouse root (overrides conf 'warehouse')")
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
    """Run the stages of ``command`` with ``argv`` flags; returns the process exit code."""
    parser = argparse.ArgumentParser(prog=f"vidrec {command}", description=f"vidrec {command} stage(s)")
    add_common(parser, raw_required=command in ("nightly", "ingest"))
    if command == "nightly":
        parser.add_argument("--stages", help="comma-separated subset of stages")
    if command == "evaluate":
        parser.add_argument(
            "--protocol", choices=["time", "chrono", "random"], help="evaluation split protocol"
        )
        parser.add_argument("--models", help="comma-separated algorithms (default: conf models)")
    args = parser.parse_args(argv)
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
    setup_logging(conf["logging"]["level"])

    from vidrec import pipeline
    from vidrec.session import build_spark

    stages = COMMANDS[command] or (args.stages.split(",") if getattr(args, "stages", None) else None)
    try:
        spark = build_spark(conf)
    except ConfigError as exc:
        print(f"vidrec {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = pipeline.run_nightly(spark, conf, args.run_date, args.raw, stages, use_gpu=args.use_gpu)
        print(pipeline.format_summary(spark, conf["warehouse"], summary))
    except Exception as exc:  # the run log and roll-back already happened
        log.error("vidrec %s for %s failed: %s", command, args.run_date, exc)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``vidrec <command> [flags]``: one entry point for every stage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = {
        "generate_sample": "vidrec.sample_cli",
        "train_deep": "vidrec.deep.cli",
        "analytics": "vidrec.analytics_cli",
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

        return int(importlib.import_module(extra[command]).main(rest) or 0)
    return run_stages(command, rest)


if __name__ == "__main__":
    raise SystemExit(main())
