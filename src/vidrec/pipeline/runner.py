"""Running the nightly: the stages of one date with the run log and roll-back, and backfills."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession

from vidrec import constants as C
from vidrec.config import Config
from vidrec.data import ingest, tables
from vidrec.evaluation.gate import EXIT_HELD
from vidrec.pipeline.context import RunContext
from vidrec.pipeline.lease import LeaseLost
from vidrec.pipeline.runlog import (
    RUN_TABLES,
    _log_run,
    model_versions,
    rollback,
    rows_written,
    table_versions,
)
from vidrec.pipeline.stages import STAGE_NAMES, STAGES

log = logging.getLogger(__name__)


def run_nightly(
    spark: SparkSession,
    conf: Config,
    run_date: dt.date,
    raw_dir: str | None,
    stages: Sequence[str] | None = None,
    use_gpu: bool = False,
    full_refresh: bool = False,
    run_id: str | None = None,
    guard: Callable[[], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``stages`` (default: all, in order) for ``run_date``; returns the run summary.

    ``raw_dir`` may hold ``{run_date}`` (see :func:`raw_for_date`). ``full_refresh`` makes the matrix
    fold every event in bronze again instead of the night's (see :func:`vidrec.data.matrix.run`).
    ``run_id`` names the run in ``ops/runs`` (default: a fresh id). ``guard`` is called before each stage
    (the warehouse lease's :meth:`~vidrec.pipeline.lease.Lease.check`): what it raises stops the run
    there, without a roll-back, since another job may have taken the warehouse over.

    Each stage appends a row to ``ops/runs``: status, timings, its details (JSON), the rows it wrote
    per table (Delta commit metrics), rejected records (ingest) and model versions (evaluate,
    recommend).

    Raises
    ------
    Exception
        The first stage failure, after every table the run touched was restored, except the
        quarantine rows of a run refused for bad input (:class:`vidrec.data.ingest.BadInputError`),
        which stay for the operator to inspect.
    """
    names = list(stages) if stages else STAGE_NAMES
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are {STAGE_NAMES}")
    rc = RunContext(
        spark, conf, run_date, raw_for_date(raw_dir, run_date), use_gpu=use_gpu, full_refresh=full_refresh
    )
    if run_id:
        rc.run_id = run_id
    before = table_versions(spark, rc.warehouse, RUN_TABLES)
    log.info("run %s for %s: stages %s, warehouse %s", rc.run_id, run_date, names, rc.warehouse)
    total = time.perf_counter()
    last = dict(before)
    for name, fn in STAGES:
        if name not in names:
            continue
        if guard is not None:
            guard()
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        log.info("stage %s: start", name)
        try:
            details = fn(rc)
        except Exception as exc:
            seconds = time.perf_counter() - t0
            log.error("stage %s: FAILED after %.1f s: %s", name, seconds, exc)
            bad_input = isinstance(exc, ingest.BadInputError)
            keep = (C.T_QUARANTINE,) if bad_input else ()
            restored = rollback(spark, rc.warehouse, before, keep=keep)
            if restored:
                log.error("rolled back %s to their state before the run", ", ".join(restored))
            details = {"rolled_back": restored}
            bad = None
            if bad_input:
                details["quarantine_kept"] = tables.catalog_name(C.T_QUARANTINE)
                report = getattr(exc, "report", None)
                if report is not None:
                    bad = sum(report.rejected.values())
                    details["rejected"] = report.rejected
                    details["reasons"] = report.reasons
                log.error(
                    "the rejected records stay in %s for run_date %s", details["quarantine_kept"], run_date
                )
            _log_run(rc, name, "failed", started, details, f"{type(exc).__name__}: {exc}", bad_records=bad)
            raise
        seconds = time.perf_counter() - t0
        now = table_versions(spark, rc.warehouse, RUN_TABLES)
        written = rows_written(spark, rc.warehouse, last, now)
        last = now
        versions = dict(details.get("model_versions") or {}) or model_versions(
            spark, rc.warehouse, name, run_date
        )
        bad = sum(details["rejected"].values()) if name == "ingest" else None
        rc.summary[name] = {"seconds": round(seconds, 1), **details, "rows_written": written}
        log.info(
            "stage %s: done in %.1f s; rows written %s; %s",
            name,
            seconds,
            written,
            json.dumps(details, default=str)[:2000],
        )
        _log_run(rc, name, "succeeded", started, details, None, written, bad, versions)
    rc.summary["_run"] = {"run_id": rc.run_id, "seconds": round(time.perf_counter() - total, 1)}
    return rc.summary


def held_gate(summary: Mapping[str, Any]) -> str | None:
    """Why the publish gate held the lists of a run (its ``recommend`` details), or ``None`` if it did not."""
    gate = (summary.get("recommend") or {}).get("publish_gate") or {}
    return str(gate.get("reason", "")) if gate.get("decision") == "held" else None


def exit_code(summaries: Sequence[Mapping[str, Any]]) -> int:
    """The exit code of finished runs: :data:`~vidrec.evaluation.gate.EXIT_HELD` (6) when the publish
    gate held the lists of any of them, else 0."""
    return EXIT_HELD if any(held_gate(s) is not None for s in summaries) else 0


class BackfillError(RuntimeError):
    """A date of a backfill failed; the dates before it are done, the failed one was rolled back."""


def raw_for_date(raw_dir: str | None, run_date: dt.date) -> str | None:
    """``raw_dir`` with ``{run_date}`` replaced by the ISO date (one folder per day), else as given."""
    if raw_dir is None or "{run_date}" not in raw_dir:
        return raw_dir
    return raw_dir.replace("{run_date}", run_date.isoformat())


def backfill_dates(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end`` inclusive.

    Raises
    ------
    ValueError
        When ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"backfill: end date {end} is before start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def run_backfill(
    spark: SparkSession,
    conf: Config,
    start: dt.date,
    end: dt.date,
    raw_dir: str | None,
    stages: Sequence[str] | None = None,
    use_gpu: bool = False,
    guard: Callable[[], None] | None = None,
) -> dict[dt.date, dict[str, dict[str, Any]]]:
    """Run the nightly for every date from ``start`` to ``end`` (inclusive), in date order.

    Each date is one :func:`run_nightly` (idempotent, rolled back on failure), so a backfill can be
    rerun or resumed at any date. ``raw_dir`` may hold ``{run_date}`` (one folder per day, e.g.
    ``/data/raw/{run_date}``); otherwise every date reads the same folder, taking the events up to
    its date. Dates earlier than what the warehouse already holds are fine: latest-state tables are
    not moved back (see :func:`vidrec.data.matrix.run`), each date's gold partitions are replaced.
    ``guard`` as in :func:`run_nightly` (one lease covers the whole backfill).

    Returns
    -------
    dict
        Run date -> that run's summary.

    Raises
    ------
    BackfillError
        At the first failed date, naming it, the dates already done and how to resume; the
        dates after it are not run.
    """
    dates = backfill_dates(start, end)
    done: dict[dt.date, dict[str, dict[str, Any]]] = {}
    t0 = time.perf_counter()
    log.info("backfill %s..%s: %d date(s), stages %s", start, end, len(dates), list(stages or STAGE_NAMES))
    for i, day in enumerate(dates, 1):
        log.info("backfill: date %s (%d of %d)", day, i, len(dates))
        try:
            done[day] = run_nightly(
                spark, conf, day, raw_for_date(raw_dir, day), stages, use_gpu, guard=guard
            )
        except LeaseLost:  # another job took the warehouse over: nothing to resume from here
            raise
        except Exception as exc:
            ok = f"{dates[0]}..{dates[i - 2]}" if i > 1 else "none"
            raise BackfillError(
                f"backfill {start}..{end} stopped at {day} (date {i} of {len(dates)}): "
                f"{type(exc).__name__}: {exc}. Dates done: {ok}; {day} was rolled back and the dates "
                f"after it were not run. Fix the cause, then resume with --run-date {day} --until {end} "
                "(every date is idempotent, rerunning done dates changes nothing)."
            ) from exc
    log.info("backfill %s..%s: %d date(s) done in %.1f s", start, end, len(dates), time.perf_counter() - t0)
    return done


def format_summary(spark: SparkSession, warehouse: str, summary: Mapping[str, Any]) -> str:
    """Human-readable end-of-run report: the rows each table took, and the metrics side by side.

    Row counts come from the Delta commit metrics each stage recorded (no Spark job per table).
    """
    lines = [
        f"vidrec run {summary.get('_run', {}).get('run_id', '?')} "
        f"finished in {summary.get('_run', {}).get('seconds', 0):.1f} s",
        "",
        "Rows written by this run (Delta commit metrics):",
    ]
    written: dict[str, int] = {}
    for stage, details in summary.items():
        if stage.startswith("_") or not isinstance(details, Mapping):
            continue
        for table, n in (details.get("rows_written") or {}).items():
            written[table] = written.get(table, 0) + int(n)
    paths = {tables.catalog_name(t): tables.table_path(warehouse, t) for t in RUN_TABLES + (C.T_RUNS,)}
    for table in sorted(written):
        lines.append(f"  {table:<32} {written[table]:>10,d} rows  {paths.get(table, '')}")
    if not written:
        lines.append("  (none)")
    served = {
        a: m
        for a, m in (summary.get("evaluate", {}).get("served_next_day") or {}).items()
        if isinstance(m, dict)
    }
    if served:
        note = summary["evaluate"]["served_next_day"].get("note", "")
        lines += ["", f"Served-list check ({note}):"]
        for algo in sorted(served):
            values = ", ".join(f"{k}={v}" for k, v in sorted(served[algo].items()))
            lines.append(f"  {algo:<12} {values}")
    metrics = summary.get("evaluate", {}).get("metrics")
    if metrics:
        algos = sorted(metrics)
        keys = sorted({k for m in metrics.values() for k in m})
        lines += [
            "",
            f"Model metrics (split {summary['evaluate'].get('split', '?')}):",
            "  " + f"{'metric':<18}" + "".join(f"{a:>12}" for a in algos),
        ]
        for key in keys:
            lines.append(
                "  " + f"{key:<18}" + "".join(f"{metrics[a].get(key, float('nan')):>12.4f}" for a in algos)
            )
        slices = summary.get("evaluate", {}).get("slices") or {}
        slice_keys = sorted({k for m in slices.values() for k in m})
        if slice_keys:
            lines.append("  cold slices (users with <= cold_start_max_events positive items; unseen items):")
            for key in slice_keys:
                cells = "".join(f"{slices.get(a, {}).get(key, float('nan')):>12.4f}" for a in algos)
                lines.append("  " + f"{key:<18}" + cells)
    held = held_gate(summary)
    if held is not None:
        lines += [
            "",
            f"PUBLISH GATE HELD the lists: {held}; the previous lists are served again (exit {EXIT_HELD})",
        ]
    stage_times = ", ".join(f"{k} {v['seconds']}s" for k, v in summary.items() if not k.startswith("_"))
    lines += ["", f"Stage times: {stage_times}"]
    return "\n".join(lines)
