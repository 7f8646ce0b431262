"""The nightly pipeline: an ordered list of idempotent stages, with a run log and a roll-back.

Stages: ``ingest`` → ``matrix`` → ``evaluate`` → ``recommend`` → ``popular`` → ``analytics``. Each stage logs
its start, end, row counts and seconds, and appends one row to ``ops/runs``. Every table write is
idempotent for the run date; if a stage fails, every table the run touched is restored to the
version it had when the run started (Delta RESTORE), so a failed run leaves the warehouse as it was
(except the quarantine rows of a run refused for bad input, kept for the operator).
``run_backfill`` runs a range of dates in order, stopping at the first failure.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec import analytics, generators, ingest, matrix, popularity, schemas, tables
from vidrec import constants as C
from vidrec import evaluate as ev
from vidrec.generators import Candidates, FitContext

log = logging.getLogger(__name__)

#: Tables a run may write, in the order they are restored on failure.
RUN_TABLES = (
    C.T_QUARANTINE,
    C.T_EVENTS,
    C.T_ITEMS,
    C.T_USERS,
    C.T_USER_INDEX,
    C.T_ITEM_INDEX,
    C.T_INTERACTIONS,
    C.T_MODEL_METRICS,
    C.T_RECOMMENDATIONS,
    C.T_POPULAR_ITEMS,
    C.T_SIMILAR_ITEMS,
    C.T_USER_EMBEDDINGS,
    *analytics.ANALYTICS_TABLES.values(),
)

REASONS = {
    C.ALGO_ALS: "people with similar taste watched this",
    C.ALGO_POPULARITY: "popular right now",
    C.ALGO_EASE: "often watched together with what you watched",
    C.ALGO_NCF: "people with similar taste watched this",
    C.ALGO_MULTVAE: "matches the mix of what you watch",
    C.ALGO_SEQUENCE: "what people watch next after your recent titles",
    C.ALGO_TEXT: "similar in story, cast or genre to what you watched",
    C.ALGO_FUSION: "similar taste and similar content to what you watched",
    C.ALGO_ITEMKNN: "often watched together with what you watched",
    C.ALGO_CONTENT: "similar in genre, cast or story to what you watched",
}
COLD_START_REASON = "popular right now (not enough history for a personal list)"


@dataclass
class RunContext:
    """State shared by the stages of one run."""

    spark: SparkSession
    conf: dict[str, Any]
    run_date: dt.date
    raw_dir: str | None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    use_gpu: bool = False

    @property
    def warehouse(self) -> str:
        return self.conf["warehouse"]


def build_fit_context(
    spark: SparkSession, conf: Mapping[str, Any], run_date: dt.date, use_gpu: bool = False
) -> FitContext:
    """A :class:`FitContext` over everything known up to ``run_date`` (the nightly, not a split).

    Target users are every user indexed by ``run_date`` (``first_seen <= run_date``); seen pairs follow
    ``recommend.exclude_played``. A run for an earlier date than the latest state (out of order, or a
    backfill) gets the interactions and ids as they were at ``run_date``.
    """
    wh = conf["warehouse"]
    as_of = F.col(C.COL_FIRST_SEEN) <= F.lit(run_date)
    user_index = tables.read(spark, wh, C.T_USER_INDEX).where(as_of)
    item_index = tables.read(spark, wh, C.T_ITEM_INDEX).where(as_of)
    interactions = matrix.interactions_as_of(spark, conf, run_date)
    events = ev.with_indexes(matrix.events_up_to(spark, wh, run_date), user_index, item_index)
    items = tables.read(spark, wh, C.T_ITEMS).join(item_index.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM)
    users = (
        tables.read(spark, wh, C.T_USERS).join(
            user_index.select(C.COL_USER, C.COL_USER_IDX), C.COL_USER, "right"
        )
        if tables.exists(spark, wh, C.T_USERS)
        else user_index
    )
    return FitContext(
        spark=spark,
        conf=dict(conf),
        interactions=interactions,
        events=events,
        items=items,
        users=users,
        target_users=user_index.select(C.COL_USER_IDX),
        seen=ev.seen_pairs(interactions, conf["recommend"]["exclude_played"]),
        n=conf["recommend"]["top_n"],
        work_dir=f"{wh}/{C.MODELS}/{run_date.isoformat()}",
        run_date=run_date.isoformat(),
        extras={"use_gpu": use_gpu, "save_model": True},
    )


def to_gold(cand: Candidates, algorithm: str, ctx: FitContext, run_date: dt.date, reason: str) -> DataFrame:
    """Map a generator's candidates to ``gold/recommendations`` rows (ids, version, reason)."""
    users = tables.read(ctx.spark, ctx.conf["warehouse"], C.T_USER_INDEX).select(C.COL_USER, C.COL_USER_IDX)
    items = ctx.items.select(C.COL_ITEM, C.COL_ITEM_IDX)
    return (
        cand.recs.join(users, C.COL_USER_IDX)
        .join(items, C.COL_ITEM_IDX)
        .select(
            F.lit(run_date).alias(C.COL_RUN_DATE),
            C.COL_USER,
            F.col(C.COL_RANK).cast("int").alias(C.COL_RANK),
            C.COL_ITEM,
            F.col(C.COL_SCORE).cast("double").alias(C.COL_SCORE),
            F.lit(algorithm).alias(C.COL_ALGORITHM),
            F.lit(cand.model_version).alias(C.COL_MODEL_VERSION),
            F.lit(reason).alias(C.COL_REASON),
        )
    )


# --- stages -----------------------------------------------------------------------------------


def stage_ingest(rc: RunContext) -> dict[str, Any]:
    if rc.raw_dir is None:
        raise ValueError("--raw is required for the ingest stage")
    report = ingest.run(rc.spark, rc.conf, rc.raw_dir, rc.run_date)
    return {
        "events_read": report.events_read,
        "empty_day": report.empty_day,
        "new_events": report.new_events,
        "late_events": report.late_events,
        "replayed_events": report.already_ingested,
        "deferred_events": report.deferred_events,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "reasons": report.reasons,
    }


def stage_matrix(rc: RunContext) -> dict[str, Any]:
    return matrix.run(rc.spark, rc.conf, rc.run_date)


def stage_evaluate(rc: RunContext) -> dict[str, Any]:
    spark, wh = rc.spark, rc.warehouse
    users = tables.read(spark, wh, C.T_USERS) if tables.exists(spark, wh, C.T_USERS) else None
    user_index = tables.read(spark, wh, C.T_USER_INDEX)
    if users is None:
        users = user_index.select(C.COL_USER)
    rows = ev.evaluate(
        spark,
        rc.conf,
        matrix.events_up_to(spark, wh, rc.run_date),
        tables.read(spark, wh, C.T_ITEMS),
        users,
        user_index,
        tables.read(spark, wh, C.T_ITEM_INDEX),
        rc.conf["models"],
        rc.run_date,
        f"{wh}/{C.MODELS}/{rc.run_date.isoformat()}/eval",
    ).cache()
    split = ev.PROTOCOLS[rc.conf["evaluation"]["protocol"]]
    algos = ", ".join(f"'{a}'" for a in rc.conf["models"])
    tables.replace_partition(
        rows,
        wh,
        C.T_MODEL_METRICS,
        rc.run_date,
        extra_predicate=f"({C.COL_SPLIT} = '{split}' OR {C.COL_SPLIT} LIKE '{split}:%') "
        f"AND {C.COL_ALGORITHM} IN ({algos})",
    )
    table: dict[str, dict[str, float]] = {}
    slices: dict[str, dict[str, float]] = {}
    for r in rows.collect():
        key = f"{r[C.COL_METRIC]}" + (f"@{r[C.COL_K]}" if r[C.COL_K] else "")
        if r[C.COL_SPLIT] == split:
            table.setdefault(r[C.COL_ALGORITHM], {})[key] = round(r[C.COL_VALUE], 4)
        elif r[C.COL_METRIC] in ("ndcg", "users_evaluated"):
            name = r[C.COL_SPLIT].split(":", 1)[1]
            slices.setdefault(r[C.COL_ALGORITHM], {})[f"{name}:{key}"] = round(r[C.COL_VALUE], 4)
    rows.unpersist()
    return {"split": split, "metrics": table, "slices": slices}


def stage_recommend(rc: RunContext) -> dict[str, Any]:
    ctx = build_fit_context(rc.spark, rc.conf, rc.run_date, rc.use_gpu)
    models = list(rc.conf["models"])
    frames: list[DataFrame] = []
    embeddings: list[tuple[str, str, DataFrame]] = []
    fallback = generators.get(C.ALGO_POPULARITY)(ctx)
    fallback_recs = fallback.recs.cache()
    log.info("recommend: popularity lists built")
    fitted = generators.fit_all(
        ctx, models, {C.ALGO_POPULARITY: fallback} if C.ALGO_POPULARITY in models else None, "recommend"
    )
    for algo in models:
        cand = fitted[algo]
        recs = cand.recs.where(F.col(C.COL_RANK) <= ctx.n)
        if algo == C.ALGO_HYBRID:
            frames.append(hybrid_to_gold(cand, ctx, rc.run_date))
        else:
            frames.append(
                to_gold(Candidates(recs, cand.model_version), algo, ctx, rc.run_date, REASONS.get(algo, algo))
            )
        if algo != C.ALGO_POPULARITY:
            # users this model cannot serve get the popularity list, marked as cold start
            missing = fallback_recs.join(recs.select(C.COL_USER_IDX).distinct(), C.COL_USER_IDX, "left_anti")
            frames.append(
                to_gold(Candidates(missing, cand.model_version), algo, ctx, rc.run_date, COLD_START_REASON)
            )
        for name, art in cand.artifacts.items():
            if name in ("user_factors", "item_factors"):
                art.write.mode("overwrite").parquet(f"{ctx.work_dir}/{algo}_{name}")
            elif name == "user_embeddings":
                embeddings.append((algo, cand.model_version, art))
    gold = frames[0]
    for frame in frames[1:]:
        gold = gold.unionByName(frame)
    algos = ", ".join(f"'{a}'" for a in models)
    tables.replace_partition(
        gold,
        rc.warehouse,
        C.T_RECOMMENDATIONS,
        rc.run_date,
        extra_predicate=f"{C.COL_ALGORITHM} IN ({algos})",
    )
    if embeddings:
        write_user_embeddings(ctx, embeddings, rc.run_date)
    similar = write_similar_items(ctx, fitted, rc.run_date)
    written = (
        tables.read(rc.spark, rc.warehouse, C.T_RECOMMENDATIONS)
        .where(F.col(C.COL_RUN_DATE) == F.lit(rc.run_date))
        .groupBy(C.COL_ALGORITHM)
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(C.COL_USER).alias("users"))
        .collect()
    )
    for cand in fitted.values():
        cand.recs.unpersist()
    fallback_recs.unpersist()
    details: dict[str, Any] = {r[C.COL_ALGORITHM]: {"rows": r["rows"], "users": r["users"]} for r in written}
    details["model_versions"] = {a: fitted[a].model_version for a in models}
    details["similar_items"] = similar
    return details


def hybrid_to_gold(cand: Candidates, ctx: FitContext, run_date: dt.date) -> DataFrame:
    """``gold/recommendations`` rows of the hybrid: each row with its own explanation."""
    rows = to_gold(cand, C.ALGO_HYBRID, ctx, run_date, "").drop(C.COL_REASON)
    reasons = cand.artifacts["reasons"]
    users = tables.read(ctx.spark, ctx.conf["warehouse"], C.T_USER_INDEX).select(C.COL_USER, C.COL_USER_IDX)
    items = ctx.items.select(C.COL_ITEM, C.COL_ITEM_IDX)
    named = (
        reasons.join(users, C.COL_USER_IDX)
        .join(items, C.COL_ITEM_IDX)
        .select(C.COL_USER, C.COL_ITEM, C.COL_REASON)
    )
    return rows.join(named, [C.COL_USER, C.COL_ITEM], "left").select(*schemas.RECOMMENDATIONS.fieldNames())


def write_similar_items(
    ctx: FitContext, fitted: Mapping[str, Candidates], run_date: dt.date
) -> dict[str, int]:
    """``gold/similar_items`` for this run date (one commit): co-watch and content neighbours.

    Reuses the ``neighbours`` of item-kNN and the ``item_vectors`` of the content generator when they
    were fitted tonight; returns rows per algorithm.
    """
    from vidrec.itemknn import similar_items

    knn, content = fitted.get(C.ALGO_ITEMKNN), fitted.get(C.ALGO_CONTENT)
    rows = similar_items(
        ctx,
        int(ctx.conf["similar_items"]["top_n"]),
        run_date,
        neighbours=knn.artifacts.get("neighbours") if knn is not None else None,
        vectors=content.artifacts.get("item_vectors") if content is not None else None,
    )
    tables.replace_partition(rows, ctx.conf["warehouse"], C.T_SIMILAR_ITEMS, run_date)
    counts = (
        tables.read(ctx.spark, ctx.conf["warehouse"], C.T_SIMILAR_ITEMS)
        .where(F.col(C.COL_RUN_DATE) == F.lit(run_date))
        .groupBy(C.COL_ALGORITHM)
        .count()
        .collect()
    )
    return {r[C.COL_ALGORITHM]: r["count"] for r in counts}


def write_user_embeddings(
    ctx: FitContext, embeddings: list[tuple[str, str, DataFrame]], run_date: dt.date
) -> None:
    """``gold/user_embeddings``: ``run_date, user_id, algorithm, model_version, embedding`` (one commit)."""
    users = tables.read(ctx.spark, ctx.conf["warehouse"], C.T_USER_INDEX).select(C.COL_USER, C.COL_USER_IDX)
    frames = [
        art.join(users, C.COL_USER_IDX).select(
            F.lit(run_date).alias(C.COL_RUN_DATE),
            C.COL_USER,
            F.lit(algo).alias(C.COL_ALGORITHM),
            F.lit(version).alias(C.COL_MODEL_VERSION),
            F.col("embedding").cast("array<float>").alias("embedding"),
        )
        for algo, version, art in embeddings
    ]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    algos = ", ".join(f"'{a}'" for a, _, _ in embeddings)
    tables.replace_partition(
        out,
        ctx.conf["warehouse"],
        C.T_USER_EMBEDDINGS,
        run_date,
        extra_predicate=f"{C.COL_ALGORITHM} IN ({algos})",
    )


def stage_popular(rc: RunContext) -> dict[str, Any]:
    spark, wh = rc.spark, rc.warehouse
    lists = popularity.popular_lists(
        matrix.events_up_to(spark, wh, rc.run_date), tables.read(spark, wh, C.T_ITEMS), rc.conf, rc.run_date
    )
    tables.replace_partition(lists, wh, C.T_POPULAR_ITEMS, rc.run_date)
    rows = (
        tables.read(spark, wh, C.T_POPULAR_ITEMS)
        .where(F.col(C.COL_RUN_DATE) == F.lit(rc.run_date))
        .agg(F.count(F.lit(1)), F.countDistinct(C.COL_SEGMENT))
        .first()
    )
    return {"rows": rows[0], "segments": rows[1]}


def stage_analytics(rc: RunContext) -> dict[str, Any]:
    return analytics.write_all(rc.spark, rc.warehouse, rc.run_date, days=rc.conf["analytics"]["days"])


Stage = Callable[[RunContext], dict[str, Any]]
STAGES: list[tuple[str, Stage]] = [
    ("ingest", stage_ingest),
    ("matrix", stage_matrix),
    ("evaluate", stage_evaluate),
    ("recommend", stage_recommend),
    ("popular", stage_popular),
    ("analytics", stage_analytics),
]
STAGE_NAMES = [name for name, _ in STAGES]


# --- run log and roll-back --------------------------------------------------------------------

RUNS_SCHEMA = (
    "run_id string, run_date date, stage string, status string, started_at timestamp, "
    "ended_at timestamp, seconds double, details string, error string, "
    "rows_written map<string, bigint>, bad_records bigint, model_versions map<string, string>"
)
#: Stages whose tables carry a ``model_version`` column, read back for the run log.
_VERSIONED = {"evaluate": C.T_MODEL_METRICS, "recommend": C.T_RECOMMENDATIONS}
#: Delta operation metrics of a MERGE that count the rows it changed (its numOutputRows counts copies too).
_MERGE_METRICS = ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")


def commit_rows(metrics: Mapping[str, str] | None) -> int:
    """Rows one Delta commit wrote: inserted + updated + deleted for a MERGE, else ``numOutputRows``."""
    m = metrics or {}
    if any(k in m for k in _MERGE_METRICS):
        return sum(int(m.get(k) or 0) for k in _MERGE_METRICS)
    if "numUpdatedRows" in m:
        return int(m["numUpdatedRows"])
    if "numOutputRows" in m:
        return int(m["numOutputRows"])
    return int(m.get("numDeletedRows") or 0)


def _log_run(
    rc: RunContext,
    stage: str,
    status: str,
    started: dt.datetime,
    details: Any,
    error: str | None,
    rows_written: Mapping[str, int] | None = None,
    bad_records: int | None = None,
    model_versions: Mapping[str, str] | None = None,
) -> None:
    """Append one row to ``ops/runs`` (adding the newer columns to an older table's schema)."""
    ended = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = [
        (
            rc.run_id,
            rc.run_date,
            stage,
            status,
            started,
            ended,
            (ended - started).total_seconds(),
            json.dumps(details, default=str),
            error,
            dict(rows_written or {}),
            bad_records,
            dict(model_versions or {}),
        )
    ]
    tables.append(rc.spark.createDataFrame(row, RUNS_SCHEMA), rc.warehouse, C.T_RUNS, merge_schema=True)


def table_versions(
    spark: SparkSession, warehouse: str, names: Sequence[tables.Table]
) -> dict[tables.Table, int | None]:
    """Current Delta version of each table (``None`` when it does not exist yet)."""
    return {t: tables.latest_version(spark, warehouse, t) for t in names}


def rows_written(
    spark: SparkSession,
    warehouse: str,
    before: Mapping[tables.Table, int | None],
    after: Mapping[tables.Table, int | None],
) -> dict[str, int]:
    """Rows each changed table took between two version maps, from Delta's commit metrics.

    Each commit counts as :func:`commit_rows` of its ``operationMetrics``.
    """
    out: dict[str, int] = {}
    for t, v in after.items():
        if v is None or v == before.get(t):
            continue
        first = 0 if before.get(t) is None else before[t] + 1
        infos = tables.commit_infos(spark, warehouse, t, range(first, v + 1))
        out[tables.catalog_name(t)] = sum(commit_rows(i.get("operationMetrics")) for i in infos)
    return out


def model_versions(spark: SparkSession, warehouse: str, stage: str, run_date: dt.date) -> dict[str, str]:
    """The model versions ``stage`` (evaluate, recommend) wrote for ``run_date``, by model name.

    A version reads ``<name>-<run_date>-<hash of its parameters>``; the name is the algorithm, or
    e.g. ``als-explicit`` for the rating model evaluate fits beside the ranking one.
    """
    table = _VERSIONED.get(stage)
    if table is None or not tables.exists(spark, warehouse, table):
        return {}
    rows = (
        tables.read(spark, warehouse, table)
        .where(F.col(C.COL_RUN_DATE) == F.lit(run_date))
        .select(C.COL_ALGORITHM, C.COL_MODEL_VERSION)
        .distinct()
        .collect()
    )
    sep = f"-{run_date.isoformat()}-"
    return {(v.split(sep)[0] if sep in v else a): v for a, v in sorted(rows)}


def rollback(
    spark: SparkSession,
    warehouse: str,
    before: Mapping[tables.Table, int | None],
    keep: Sequence[tables.Table] = (),
) -> list[str]:
    """Restore every table that changed since ``before`` to its version then; returns what was restored.

    A table created by the failed run is emptied at a new version (Delta keeps its history). Tables in
    ``keep`` are left as the run wrote them (the quarantine of a run refused for bad input).
    """
    restored = []
    now = table_versions(spark, warehouse, list(before))
    for t, v in before.items():
        if t in keep or now[t] is None or now[t] == v:
            continue
        dt_ = DeltaTable.forPath(spark, tables.table_path(warehouse, t))
        if v is None:
            dt_.delete()
        else:
            dt_.restoreToVersion(v)
        restored.append(tables.catalog_name(t))
    return restored


def run_nightly(
    spark: SparkSession,
    conf: dict[str, Any],
    run_date: dt.date,
    raw_dir: str | None,
    stages: Sequence[str] | None = None,
    use_gpu: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run ``stages`` (default: all, in order) for ``run_date``; returns the run summary.

    ``raw_dir`` may hold ``{run_date}`` (see :func:`raw_for_date`).

    Each stage appends a row to ``ops/runs``: status, timings, its details (JSON), the rows it wrote
    per table (Delta commit metrics), rejected records (ingest) and model versions (evaluate,
    recommend).

    Raises
    ------
    Exception
        The first stage failure, after every table the run touched was restored, except the
        quarantine rows of a run refused for bad input (:class:`vidrec.ingest.BadInputError`),
        which stay for the operator to inspect.
    """
    names = list(stages) if stages else STAGE_NAMES
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are {STAGE_NAMES}")
    rc = RunContext(spark, conf, run_date, raw_for_date(raw_dir, run_date), use_gpu=use_gpu)
    before = table_versions(spark, rc.warehouse, RUN_TABLES)
    log.info("run %s for %s: stages %s, warehouse %s", rc.run_id, run_date, names, rc.warehouse)
    total = time.perf_counter()
    last = dict(before)
    for name, fn in STAGES:
        if name not in names:
            continue
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
        rc.summary[name] = {"seconds": round(seconds, 1), **details}
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
    conf: dict[str, Any],
    start: dt.date,
    end: dt.date,
    raw_dir: str | None,
    stages: Sequence[str] | None = None,
    use_gpu: bool = False,
) -> dict[dt.date, dict[str, dict[str, Any]]]:
    """Run the nightly for every date from ``start`` to ``end`` (inclusive), in date order.

    Each date is one :func:`run_nightly` (idempotent, rolled back on failure), so a backfill can be
    rerun or resumed at any date. ``raw_dir`` may hold ``{run_date}`` (one folder per day, e.g.
    ``/data/raw/{run_date}``); otherwise every date reads the same folder, taking the events up to
    its date. Dates earlier than what the warehouse already holds are fine: latest-state tables are
    not moved back (see :func:`vidrec.matrix.run`), each date's gold partitions are replaced.

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
            done[day] = run_nightly(spark, conf, day, raw_for_date(raw_dir, day), stages, use_gpu)
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
    """Human-readable end-of-run report: tables with row counts, and the metrics side by side."""
    lines = [
        f"vidrec run {summary.get('_run', {}).get('run_id', '?')} "
        f"finished in {summary.get('_run', {}).get('seconds', 0):.1f} s",
        "",
        "Tables:",
    ]
    for t in RUN_TABLES + (C.T_RUNS,):
        if tables.exists(spark, warehouse, t):
            n = tables.read(spark, warehouse, t).count()
            lines.append(f"  {tables.catalog_name(t):<32} {n:>10,d} rows  {tables.table_path(warehouse, t)}")
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
                values = (slices.get(a, {}).get(key, float("nan")) for a in algos)
                lines.append("  " + f"{key:<18}" + "".join(f"{v:>12.4f}" for v in values))
    stage_times = ", ".join(f"{k} {v['seconds']}s" for k, v in summary.items() if not k.startswith("_"))
    lines += ["", f"Stage times: {stage_times}"]
    return "\n".join(lines)
