"""The nightly's stages, in order: ingest, matrix, evaluate, recommend, popular, analytics."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vidrec import analytics
from vidrec import constants as C
from vidrec.config import Config
from vidrec.data import contracts, ingest, matrix, tables
from vidrec.data.frames import materialise, release
from vidrec.evaluation import evaluate as ev
from vidrec.evaluation import gate as publish_gate
from vidrec.evaluation.blend_weights import RecordingChooser, store_choice, stored_chooser
from vidrec.evaluation.context import PROTOCOLS
from vidrec.evaluation.served import SPLIT_SERVED, served_list_check
from vidrec.evaluation.served import to_frame as served_frame
from vidrec.models import popularity, registry
from vidrec.pipeline.context import RunContext, build_fit_context
from vidrec.serving.candidates import fit_all
from vidrec.serving.gold import (
    REASONS,
    cold_start_lists,
    hybrid_list,
    seen_ids,
    served_list,
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
    return matrix.run(rc.spark, rc.conf, rc.run_date, full_refresh=rc.full_refresh)


def stage_evaluate(rc: RunContext) -> dict[str, Any]:
    """The served-list check every night; the offline evaluation when it is due.

    The check (:mod:`vidrec.evaluation.served`) scores the previous night's lists against the
    engagement that arrived since: a join, no fit. The offline evaluation fits every model on a split
    of the events (:func:`vidrec.evaluation.evaluate.evaluate`) when ``evaluation.every_days`` have
    passed since the last one, on a warehouse's first night, and every night with ``every_days: 0``.
    """
    spark, wh = rc.spark, rc.warehouse
    details: dict[str, Any] = {"served_next_day": served_check(rc)}
    due, why = offline_due(rc)
    details["offline"] = {"ran": due, "why": why}
    log.info("evaluate: offline evaluation %s (%s)", "runs" if due else "skipped", why)
    if not due:
        return details
    chooser = RecordingChooser()
    rows = ev.evaluate_warehouse(
        spark, rc.conf, rc.conf.models, rc.run_date, evaluation_dir(wh, rc.run_date), chooser
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
    details.update({"split": split, "metrics": table, "slices": slices})
    choice = chooser.choice
    if choice is not None:  # the hybrid learned its blend: served from tonight on (stage_recommend)
        version = store_choice(spark, wh, rc.run_date, rc.conf.evaluation.protocol, choice)
        details["blend"] = dataclasses.replace(choice, version=version).summary()
    return details


def served_check(rc: RunContext) -> dict[str, Any]:
    """Run the served-list check and replace its rows of this run date in ``gold/model_metrics``."""
    spark, wh = rc.spark, rc.warehouse
    check = served_list_check(
        spark, wh, matrix.interactions_as_of(spark, rc.conf, rc.run_date), rc.run_date, rc.conf.evaluation.k
    )
    log.info("evaluate: served-list check: %s", check.note)
    if check.rows:
        tables.replace_partition(
            served_frame(spark, check.rows),
            wh,
            C.T_MODEL_METRICS,
            rc.run_date,
            extra_predicate=f"{C.COL_SPLIT} = '{SPLIT_SERVED}'",
        )
    out: dict[str, Any] = {
        "served_on": check.served_on.isoformat() if check.served_on else None,
        "note": check.note,
    }
    for r in check.rows:
        if r[C.COL_METRIC] in ("ndcg", "users_evaluated"):
            key = r[C.COL_METRIC] + (f"@{r[C.COL_K]}" if r[C.COL_K] else "")
            out.setdefault(r[C.COL_ALGORITHM], {})[key] = round(r[C.COL_VALUE], 4)
    return out


def offline_due(rc: RunContext) -> tuple[bool, str]:
    """Whether the offline evaluation runs tonight, and why (see :func:`stage_evaluate`).

    The last evaluation is the latest run date *before* this one with the protocol's split in
    ``gold/model_metrics``, so a rerun of a date decides as its first run did.
    """
    every = rc.conf.evaluation.every_days
    if every == 0:
        return True, "evaluation.every_days is 0: every night"
    spark, wh = rc.spark, rc.warehouse
    split = PROTOCOLS[rc.conf.evaluation.protocol]
    if not tables.exists(spark, wh, C.T_MODEL_METRICS):
        return True, "the warehouse's first evaluation"
    row = (
        tables.read(spark, wh, C.T_MODEL_METRICS)
        .where((F.col(C.COL_SPLIT) == split) & (F.col(C.COL_RUN_DATE) < F.lit(rc.run_date)))
        .agg(F.max(C.COL_RUN_DATE))
        .first()
    )
    last = row[0] if row is not None else None
    if last is None:
        return True, f"no earlier {split} evaluation"
    days = (rc.run_date - last).days
    if days >= every:
        return True, f"{days} day(s) since the last one ({last}), evaluation.every_days {every}"
    return False, f"{days} day(s) since the last one ({last}) < evaluation.every_days {every}"


def evaluation_dir(warehouse: str, run_date: dt.date) -> str:
    """Where the offline evaluation of ``run_date`` keeps its fits (``<model>/model.pt`` for deep models)."""
    return f"{warehouse}/{C.MODELS}/{run_date.isoformat()}/eval"


def warm_plan(
    conf: Config, warehouse: str, run_date: dt.date, evaluation_night: bool
) -> tuple[bool, str | None, str]:
    """Where tonight's deep models start from: ``(warm_start, warm_root, what the log says)``.

    A night without the offline evaluation continues last night's fits (``deep.train.warm_start``).
    The evaluation's night is the full retrain: its served fits either start from scratch or, with
    ``deep.train.warm_from_evaluation``, fine-tune the evaluation's own fits of the same night (trained
    from scratch on the split's training side), never an earlier night's. A model with no such fit on
    disk (the evaluation did not run, or did not fit it) is fitted from scratch.
    """
    tc = conf.deep.train
    if evaluation_night and tc.warm_from_evaluation:
        return True, evaluation_dir(warehouse, run_date), "deep models fine-tune tonight's evaluation fit"
    if not evaluation_night and tc.warm_start:
        return True, None, "models that can start from last night's fit do"
    return False, None, "every model is fitted from scratch"


def stage_recommend(rc: RunContext) -> dict[str, Any]:
    """Fit every model and replace tonight's ``gold/recommendations``, unless the publish gate holds.

    The gate (:mod:`vidrec.evaluation.gate`) looks at tonight's quality rows first; when it holds,
    nothing is fitted: the previous lists are served again, re-dated (:func:`hold_lists`).
    """
    splits = [SPLIT_SERVED, PROTOCOLS[rc.conf.evaluation.protocol]]
    gate = publish_gate.check(rc.spark, rc.warehouse, rc.run_date, splits, rc.conf.publish_gate)
    log.info("recommend: publish gate: %s (%s)", gate["decision"], gate["reason"])
    if gate["decision"] == "held":
        held = hold_lists(rc, gate)
        if held is not None:
            return held
    full_retrain, why = offline_due(rc)
    warm, warm_root, plan = warm_plan(rc.conf, rc.warehouse, rc.run_date, full_retrain)
    log.info("recommend: %s (%s)", plan, why if full_retrain else "no offline evaluation tonight")
    ctx = build_fit_context(rc.spark, rc.conf, rc.run_date, rc.use_gpu).replace(
        warm_start=warm, warm_root=warm_root
    )
    models = list(rc.conf.models)
    lists: list[DataFrame] = []
    served: dict[str, tuple[DataFrame, str]] = {}
    embeddings: list[tuple[str, str, DataFrame]] = []
    fallback = registry.get(C.ALGO_POPULARITY)(ctx)
    # checkpointed like every model's lists (fit_all): read again by the cold-start rows and the gold
    # union, a cached frame would ship its whole plan with their tasks
    fallback = dataclasses.replace(fallback, recs=materialise(fallback.recs))
    log.info("recommend: popularity lists built")
    chooser = stored_chooser(rc.spark, rc.warehouse, rc.run_date, rc.conf.evaluation.protocol)
    fitted = fit_all(
        ctx,
        models,
        {C.ALGO_POPULARITY: fallback} if C.ALGO_POPULARITY in models else None,
        "recommend",
        chooser,
    )
    for algo in models:
        cand = fitted[algo]
        recs = cand.recs.where(F.col(C.COL_RANK) <= ctx.n)
        if algo == C.ALGO_HYBRID:
            lists.append(hybrid_list(cand, ctx.n))
        else:
            lists.append(served_list(recs, algo, cand.model_version, REASONS.get(algo, algo)))
        if algo != C.ALGO_POPULARITY:  # users this model cannot serve get the popularity list
            served[algo] = (recs, cand.model_version)
        for name, art in cand.artifacts.items():
            if name in ("user_factors", "item_factors"):
                art.write.mode("overwrite").parquet(f"{ctx.work_dir}/{algo}_{name}")
            elif name == "user_embeddings":
                embeddings.append((algo, cand.model_version, art))
    cold = cold_start_lists(fallback.recs, served)
    if cold is not None:
        lists.append(cold)
    union = lists[0]
    for frame in lists[1:]:
        union = union.unionByName(frame)
    # computed once and cut from its lineage: the plan over every model's lists and the hybrid's
    # explanations runs to 1.5 MB of text on the demo sample, and over a cached plan that size every
    # later action (check, write, counts) spent seconds of driver time before its first task
    gold = materialise(to_gold(union, ctx, rc.run_date))
    for cand in fitted.values():  # every model's lists now live in the gold rows: release them
        release(cand.recs)
    if C.ALGO_POPULARITY not in fitted:
        release(fallback.recs)
    contracts.check_recommendations(gold, seen_ids(ctx), ctx.n)
    algos = ", ".join(f"'{a}'" for a in models)
    tables.replace_partition(
        gold,
        rc.warehouse,
        C.T_RECOMMENDATIONS,
        rc.run_date,
        extra_predicate=f"{C.COL_ALGORITHM} IN ({algos})",
    )
    written = (
        gold.groupBy(C.COL_ALGORITHM)
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(C.COL_USER).alias("users"))
        .collect()
    )
    release(gold)
    if embeddings:
        write_user_embeddings(ctx, embeddings, rc.run_date)
    similar = write_similar_items(ctx, fitted, rc.run_date)
    for cand in fitted.values():  # factors, vectors and profiles: the last readers are done
        cand.release_artifacts()
    details: dict[str, Any] = {r[C.COL_ALGORITHM]: {"rows": r["rows"], "users": r["users"]} for r in written}
    details["model_versions"] = {a: fitted[a].model_version for a in models}
    details["similar_items"] = similar
    details["publish_gate"] = gate
    if chooser.choice is not None:  # the hybrid's blend: learned (its ops/blend_weights version) or conf
        details["blend"] = chooser.choice.summary()
    return details


def hold_lists(rc: RunContext, gate: dict[str, Any]) -> dict[str, Any] | None:
    """Serve the latest earlier lists again, re-dated to tonight with their model versions.

    Returns the stage's details (``publish_gate`` with ``decision: held``), or ``None`` (and marks
    ``gate`` as publishing) when the warehouse has no earlier lists to hold.
    """
    models = list(rc.conf.models)
    lists = publish_gate.previous_lists(rc.spark, rc.warehouse, rc.run_date, models)
    if lists is None:
        gate["decision"] = "publish"
        gate["reason"] += "; no earlier lists to hold: publishing tonight's"
        log.warning("recommend: publish gate: %s", gate["reason"])
        return None
    lists = lists.cache()
    algos = ", ".join(f"'{a}'" for a in models)
    tables.replace_partition(
        lists,
        rc.warehouse,
        C.T_RECOMMENDATIONS,
        rc.run_date,
        extra_predicate=f"{C.COL_ALGORITHM} IN ({algos})",
    )
    written = (
        lists.groupBy(C.COL_ALGORITHM, C.COL_MODEL_VERSION, C.COL_RUN_DATE)
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(C.COL_USER).alias("users"))
        .collect()
    )
    lists.unpersist()
    details: dict[str, Any] = {r[C.COL_ALGORITHM]: {"rows": r["rows"], "users": r["users"]} for r in written}
    details["model_versions"] = {r[C.COL_ALGORITHM]: r[C.COL_MODEL_VERSION] for r in written}
    details["publish_gate"] = gate
    log.error(
        "recommend: publish gate HELD the lists of %s: %s; the previous lists (%s) are served again, "
        "re-dated; the run goes on and exits %d",
        rc.run_date,
        gate["reason"],
        ", ".join(sorted(details["model_versions"].values())),
        publish_gate.EXIT_HELD,
    )
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
    rows = lists.agg(F.count(F.lit(1)), F.countDistinct(C.COL_SEGMENT)).first()
    lists.unpersist()
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
