"""The nightly pipeline: an ordered list of idempotent stages, with a run log and a roll-back.

Stages: ``ingest`` → ``matrix`` → ``evaluate`` → ``recommend`` → ``popular`` → ``analytics``. Each stage logs
its start, end, row counts and seconds, and appends one row to ``ops/runs``. Every table write is
idempotent for the run date; if a stage fails, every table the run touched is restored to the
version it had when the run started (Delta RESTORE), so a failed run leaves the warehouse as it was
(except the quarantine rows of a run refused for bad input, kept for the operator).
``run_backfill`` runs a range of dates in order, stopping at the first failure.

Modules: :mod:`.context` (a run's shared state, the nightly's fit context), :mod:`.stages`, :mod:`.runlog`
(``ops/runs``, roll-back), :mod:`.runner` (one date, backfills, the summary), :mod:`.session` (the
SparkSession), :mod:`.preflight` (checks before anything is written), :mod:`.forget` (erasure).
"""

from __future__ import annotations

from vidrec.pipeline.context import RunContext, build_fit_context
from vidrec.pipeline.runlog import RUN_TABLES, commit_rows, rollback, rows_written, table_versions
from vidrec.pipeline.runner import (
    BackfillError,
    backfill_dates,
    exit_code,
    format_summary,
    held_gate,
    raw_for_date,
    run_backfill,
    run_nightly,
)
from vidrec.pipeline.stages import STAGE_NAMES, STAGES

__all__ = [
    "RUN_TABLES",
    "STAGES",
    "STAGE_NAMES",
    "BackfillError",
    "RunContext",
    "backfill_dates",
    "build_fit_context",
    "exit_code",
    "commit_rows",
    "format_summary",
    "held_gate",
    "raw_for_date",
    "rollback",
    "rows_written",
    "run_backfill",
    "run_nightly",
    "table_versions",
]
