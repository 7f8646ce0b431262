"""The nightly's stages, in order: ingest, matrix, evaluate, recommend, popular, analytics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vidrec import analytics
from vidrec import constants as C
from vidrec.data import contracts, ingest, matrix, tables
from vidrec.evaluation import evaluate as ev
from vidrec.evaluation.blend_weights import choose_weights
from vidrec.evaluation.context import PROTOCOLS
from vidrec.models import popularity, registry
from vidrec.models.base import Candidates
from vidrec.pipeline.context import RunContext, build_fit_context
from vidrec.serving.candidates import fit_all
from vidrec.serving.gold import (
    COLD_START_REASON,
    REASONS,
    hybrid_to_gold,
    seen_ids,
    to_gold,
    write_similar_items,
    write_user_embeddings,
)

log = logging.getLogger(__name__)

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
        rc.conf.models,
        rc.run_date,
        f"{wh}/{C.MODELS}/{rc.run_date.isoformat()}/eval",
    ).cache()
    split = PROTOCOLS[rc.conf.evaluation.protocol]
    algos = ", ".join(f"'{a}'" for a in rc.conf.models)
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
    models = list(rc.conf.models)
    frames: list[DataFrame] = []
    embeddings: list[tuple[str, str, DataFrame]] = []
    fallback = registry.get(C.ALGO_POPULARITY)(ctx)
    fallback_recs = fallback.recs.cache()
    log.info("recommend: popularity lists built")
    fitted = fit_all(
        ctx,
        models,
        {C.ALGO_POPULARITY: fallback} if C.ALGO_POPULARITY in models else None,
        "recommend",
        choose_weights,
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
    gold = gold.cache()
    contracts.check_recommendations(gold, seen_ids(ctx), ctx.n)
    algos = ", ".join(f"'{a}'" for a in models)
    tables.replace_partition(
        gold,
        rc.warehouse,
        C.T_RECOMMENDATIONS,
        rc.run_date,
        extra_predicate=f"{C.COL_ALGORITHM} IN ({algos})",
    )
    gold.unpersist()
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


def stage_popular(rc: RunContext) -> dict[str, Any]:
    spark, wh = rc.spark, rc.warehouse
    lists = popularity.popular_lists(
        matrix.events_up_to(spark, wh, rc.run_date),
        tables.read(spark, wh, C.T_ITEMS),
        rc.conf.popularity,
        rc.run_date,
    ).cache()
    contracts.check_popular_items(lists, rc.conf.popularity.top_n)
    tables.replace_partition(lists, wh, C.T_POPULAR_ITEMS, rc.run_date)
    lists.unpersist()
    rows = (
        tables.read(spark, wh, C.T_POPULAR_ITEMS)
        .where(F.col(C.COL_RUN_DATE) == F.lit(rc.run_date))
        .agg(F.count(F.lit(1)), F.countDistinct(C.COL_SEGMENT))
        .first()
    )
    assert rows is not None, "an aggregate without grouping returns one row"
    return {"rows": rows[0], "segments": rows[1]}


def stage_analytics(rc: RunContext) -> dict[str, Any]:
    return analytics.write_all(rc.spark, rc.warehouse, rc.run_date, days=rc.conf.analytics.days)


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
