"""Offline evaluation: every generator fitted and scored on the same time split.

Protocol (DESIGN.md): train on events before a cut-off, test on events after it for users seen in
training. Relevant: a held-out (user, item) that was completed, liked, favorited or rated >= 4 and
that the user had not already consumed in training (those are excluded from every list, so they
could never be hit). Metrics at K go to ``gold/model_metrics``; RMSE/MAE where ratings exist.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec import generators, metrics, schemas
from vidrec.als import model_version, training_frame
from vidrec.generators import FitContext
from vidrec.matrix import build_interactions
from vidrec.splits import per_user_chrono_split, per_user_random_split, time_cutoff_split

log = logging.getLogger(__name__)

SPLIT_TIME = "time_cutoff"
#: evaluation.protocol -> split name written to gold/model_metrics
PROTOCOLS = {"time": SPLIT_TIME, "chrono": "per_user_chrono", "random": "per_user_random"}
RELEVANT_RATING = 4.0


def relevant_pairs(test_interactions: DataFrame) -> DataFrame:
    """``(user_idx, item_idx)`` of held-out interactions that count as relevant."""
    ic = C.COUNT_COLS
    cond = (
        (F.col(ic["complete"]) > 0)
        | (F.col(ic["like"]) > 0)
        | (F.col(ic["favorite"]) > 0)
        | (F.col(C.COL_RATING) >= RELEVANT_RATING)
    )
    return test_interactions.where(cond).select(C.COL_USER_IDX, C.COL_ITEM_IDX)


def seen_pairs(interactions: DataFrame, exclude_played: bool) -> DataFrame:
    """``(user_idx, item_idx)`` never to recommend: completed or rated (and played, if configured).

    Positive feedback (like, favorite) and dislikes are excluded too: the user has already judged it.
    """
    ic = C.COUNT_COLS
    cond = (
        (F.col(ic["complete"]) > 0)
        | F.col(C.COL_RATING).isNotNull()
        | (F.col(ic["like"]) > 0)
        | (F.col(ic["favorite"]) > 0)
        | (F.col(ic["dislike"]) > 0)
    )
    if exclude_played:
        cond = cond | (F.col(ic["play"]) > 0)
    return interactions.where(cond).select(C.COL_USER_IDX, C.COL_ITEM_IDX)


def with_indexes(events: DataFrame, user_index: DataFrame, item_index: DataFrame) -> DataFrame:
    """Events with ``user_idx`` and ``item_idx`` attached."""
    return events.join(user_index.select(C.COL_USER, C.COL_USER_IDX), C.COL_USER).join(
        item_index.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM
    )


def metric_rows(
    run_date: dt.date, algorithm: str, version: str, values: Mapping[str, float], k: int | None, split: str
) -> list[Row]:
    """``gold/model_metrics`` rows for one algorithm."""
    return [
        Row(
            run_date=run_date,
            algorithm=algorithm,
            model_version=version,
            metric=name,
            k=k,
            value=float(value),
            split=split,
        )
        for name, value in values.items()
    ]


def rating_metrics(
    train: DataFrame, test: DataFrame, als_params: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """RMSE/MAE of explicit ALS and of the item-mean baseline on held-out explicit ratings.

    Returns ``{algorithm: {"rmse": .., "mae": ..}}``; empty when either side has no rating.
    """
    train_r = train.where(F.col(C.COL_RATING).isNotNull())
    test_r = test.where(F.col(C.COL_RATING).isNotNull()).select(C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_RATING)
    if train_r.limit(1).count() == 0 or test_r.limit(1).count() == 0:
        return {}
    explicit = ALS(
        rank=als_params["rank"],
        maxIter=als_params["max_iter"],
        regParam=als_params["explicit_reg_param"],
        implicitPrefs=False,
        seed=als_params["seed"],
        userCol=C.COL_USER_IDX,
        itemCol=C.COL_ITEM_IDX,
        ratingCol="value",
        coldStartStrategy="drop",
    ).fit(training_frame(train_r, implicit=False, num_blocks=als_params["num_blocks"]))
    als_pred = explicit.transform(test_r).withColumn(
        "prediction", F.least(F.greatest("prediction", F.lit(0.5)), F.lit(5.0))
    )
    global_mean = train_r.agg(F.avg(C.COL_RATING)).first()[0]
    item_mean = train_r.groupBy(C.COL_ITEM_IDX).agg(F.avg(C.COL_RATING).alias("_m"))
    pop_pred = test_r.join(item_mean, C.COL_ITEM_IDX, "left").select(
        C.COL_USER_IDX, C.COL_ITEM_IDX, F.coalesce("_m", F.lit(global_mean)).alias("prediction")
    )
    out = {}
    for name, pred in ((C.ALGO_ALS, als_pred), (C.ALGO_POPULARITY, pop_pred)):
        err = metrics.rating_errors(pred.select(C.COL_USER_IDX, C.COL_ITEM_IDX, "prediction"), test_r)
        out[name] = {"rmse": err["rmse"], "mae": err["mae"]}
    return out


def evaluate(
    spark: SparkSession,
    conf: Mapping[str, Any],
    events: DataFrame,
    items: DataFrame,
    users: DataFrame,
    user_index: DataFrame,
    item_index: DataFrame,
    algorithms: Sequence[str],
    run_date: dt.date,
    work_dir: str,
) -> DataFrame:
    """Fit every algorithm on the training side of the time split and score it on the test side.

    Returns
    -------
    DataFrame
        ``gold/model_metrics`` rows (schema :data:`vidrec.schemas.MODEL_METRICS`).
    """
    ec = conf["evaluation"]
    k = ec["k"]
    ev = with_indexes(events, user_index, item_index)
    protocol = ec["protocol"]
    if protocol not in PROTOCOLS:
        raise ValueError(f"evaluation.protocol must be one of {sorted(PROTOCOLS)}, got '{protocol}'")
    split_name = PROTOCOLS[protocol]
    if protocol == "time":
        train_ev, test_ev, cutoff = time_cutoff_split(ev, ec["test_fraction"])
        split_desc = f"time cut-off {cutoff.isoformat()}"
    elif protocol == "chrono":
        train_ev, test_ev = per_user_chrono_split(ev, ec["test_fraction"])
        split_desc = f"per-user chronological, last {ec['test_fraction']:.0%} held out"
    else:
        train_ev, test_ev = per_user_random_split(ev, 1.0 - ec["test_fraction"], seed=ec["seed"])
        split_desc = (
            f"per-user random {1 - ec['test_fraction']:.0%}/{ec['test_fraction']:.0%}, seed {ec['seed']}"
        )
    train_ev = train_ev.cache()
    weights = conf["matrix"]["weights"]
    train_i = build_interactions(train_ev, items, user_index, item_index, weights).cache()
    # read by the relevant pairs and, several times, by the rating metrics: built once from the events
    test_i = build_interactions(test_ev, items, user_index, item_index, weights).cache()
    seen = seen_pairs(train_i, conf["recommend"]["exclude_played"]).cache()
    # time protocol: relevance from the kind of feedback; per-user protocols: every held-out item
    held_out = relevant_pairs(test_i) if protocol == "time" else test_i.select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    relevant = held_out.join(seen, [C.COL_USER_IDX, C.COL_ITEM_IDX], "left_anti").cache()
    targets = relevant.select(C.COL_USER_IDX).distinct().cache()
    n_targets = targets.count()
    n_catalog = item_index.count()
    log.info("evaluate: %s; %d test users with relevant items", split_desc, n_targets)
    items_idx = items.join(item_index.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM)
    users_idx = users.join(user_index.select(C.COL_USER, C.COL_USER_IDX), C.COL_USER, "right")
    positive_train = train_i.where(F.col(C.COL_CONFIDENCE) > 0).select(C.COL_USER_IDX, C.COL_ITEM_IDX)

    min_train = int(ec["min_train_events"])
    known = train_i.groupBy(C.COL_USER_IDX).agg(F.count(F.lit(1)).alias("_n")).where(F.col("_n") >= min_train)
    relevant_main = relevant.join(known.select(C.COL_USER_IDX), C.COL_USER_IDX, "left_semi").cache()
    slices = {"": relevant_main}
    if ec["slices"]:
        from vidrec.hybrid import cold_slices, hybrid_conf

        cold_max = int(hybrid_conf(conf)["cold_start_max_events"])
        for name, pairs in cold_slices(train_i, relevant, cold_max).items():
            slices[f":{name}"] = pairs.cache()
    ctx = FitContext(
        spark=spark,
        conf=dict(conf),
        interactions=train_i,
        events=train_ev,
        items=items_idx,
        users=users_idx,
        target_users=targets,
        seen=seen,
        n=k,
        work_dir=work_dir,
        run_date=run_date.isoformat(),
        extras={"explain": False},  # reasons are for the served lists, not for metrics
    )
    rows: list[Row] = []
    start = time.perf_counter()
    fitted = generators.fit_all(ctx, algorithms, stage="evaluate")
    log.info("evaluate: %d generators fitted in %.1f s", len(fitted), time.perf_counter() - start)
    for algo in algorithms:
        cand = fitted[algo]
        recs = cand.recs
        for suffix, rel in slices.items():
            values = metrics.ranking_metrics(recs, rel, k)
            users_evaluated = values.pop("users")
            if suffix and users_evaluated == 0:
                continue
            if not suffix:
                values["coverage"] = metrics.catalog_coverage(recs, n_catalog, k)
                values["diversity"] = metrics.intra_list_diversity(recs, items_idx, k)
                values["novelty"] = metrics.novelty(recs, positive_train, k)
            split = split_name + suffix
            rows += metric_rows(run_date, algo, cand.model_version, values, k, split)
            rows += metric_rows(
                run_date, algo, cand.model_version, {"users_evaluated": users_evaluated}, None, split
            )
            log.info(
                "evaluate: %-10s %-28s ndcg@%d=%.4f precision=%.4f recall=%.4f users=%d",
                algo,
                split,
                k,
                values["ndcg"],
                values["precision"],
                values["recall"],
                users_evaluated,
            )
    for cand in fitted.values():
        cand.recs.unpersist()
    for algo, errs in rating_metrics(train_i, test_i, conf["als"]).items():
        if algo in algorithms:
            version = model_version(f"{algo}-explicit", run_date.isoformat(), conf["als"])
            rows += metric_rows(run_date, algo, version, errs, None, split_name)
    for df in (train_ev, train_i, test_i, seen, relevant, targets, *slices.values()):
        df.unpersist()
    return spark.createDataFrame(rows, schemas.MODEL_METRICS)
