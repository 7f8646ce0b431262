"""Offline evaluation: every generator fitted and scored on the same split of the events.

Protocols (``evaluation.protocol``, :mod:`vidrec.evaluation.context`): ``time`` trains on events
before a cut-off and tests on the events after it for users seen in training; relevant is a held-out
(user, item) that was completed, liked, favorited or rated >= 4 and that the user had not already
consumed in training (those are excluded from every list, so they could never be hit). ``chrono``
and ``random`` hold out a share of each user's events; every held-out item is relevant. Metrics at
K go to ``gold/model_metrics``; RMSE/MAE where ratings exist.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import Config
from vidrec.config.sections import AlsConf
from vidrec.data import schemas
from vidrec.evaluation import metrics
from vidrec.evaluation.blend_weights import choose_weights
from vidrec.evaluation.context import PROTOCOLS, holdout
from vidrec.models.als import training_frame
from vidrec.models.base import model_version
from vidrec.serving.candidates import fit_all

log = logging.getLogger(__name__)

#: Column naming the evaluation slice of a relevant pair ("" for the main split, ":cold_users"...).
_SLICE = "_slice"


def union_all(frames: Sequence[DataFrame]) -> DataFrame:
    """The rows of every frame of ``frames`` (same columns), in one DataFrame."""
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


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


def rating_metrics(train: DataFrame, test: DataFrame, als_params: AlsConf) -> dict[str, dict[str, float]]:
    """RMSE/MAE of explicit ALS and of the item-mean baseline on held-out explicit ratings.

    Returns ``{algorithm: {"rmse": .., "mae": ..}}``; empty when either side has no rating.
    """
    train_r = train.where(F.col(C.COL_RATING).isNotNull())
    test_r = test.where(F.col(C.COL_RATING).isNotNull()).select(C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_RATING)
    if train_r.limit(1).count() == 0 or test_r.limit(1).count() == 0:
        return {}
    explicit = ALS(
        rank=als_params.rank,
        maxIter=als_params.max_iter,
        regParam=als_params.explicit_reg_param,
        implicitPrefs=False,
        seed=als_params.seed,
        userCol=C.COL_USER_IDX,
        itemCol=C.COL_ITEM_IDX,
        ratingCol="value",
        coldStartStrategy="drop",
    ).fit(training_frame(train_r, implicit=False, num_blocks=als_params.num_blocks))
    als_pred = explicit.transform(test_r).withColumn(
        "prediction", F.least(F.greatest("prediction", F.lit(0.5)), F.lit(5.0))
    )
    mean_row = train_r.agg(F.avg(C.COL_RATING)).first()
    assert mean_row is not None, "an aggregate without grouping returns one row"
    global_mean = mean_row[0]
    item_mean = train_r.groupBy(C.COL_ITEM_IDX).agg(F.avg(C.COL_RATING).alias("_m"))
    pop_pred = test_r.join(item_mean, C.COL_ITEM_IDX, "left").select(
        C.COL_USER_IDX, C.COL_ITEM_IDX, F.coalesce("_m", F.lit(global_mean)).alias("prediction")
    )
    out = {}
    for name, pred in ((C.ALGO_ALS, als_pred), (C.ALGO_POPULARITY, pop_pred)):
        err = metrics.rating_errors(pred.select(C.COL_USER_IDX, C.COL_ITEM_IDX, "prediction"), test_r)
        out[name] = {"rmse": err["rmse"], "mae": err["mae"]}
    return out


def cold_slices(
    train_interactions: DataFrame, relevant: DataFrame, max_user_events: int = 3
) -> dict[str, DataFrame]:
    """Relevant pairs of the cold-start evaluation slices.

    Parameters
    ----------
    train_interactions : DataFrame
        Training ``(user_idx, item_idx, confidence)``.
    relevant : DataFrame
        ``(user_idx, item_idx)`` relevant test pairs.
    max_user_events : int
        A cold user has at most this many positive training interactions.

    Returns
    -------
    dict
        ``cold_users``: the relevant pairs of users with ``<= max_user_events`` positive training
        interactions; ``cold_items``: the relevant pairs whose item no one interacted with
        positively in training (impressions alone leave an item cold). Feed each to
        :func:`vidrec.evaluation.metrics.ranking_metrics` as the relevant set (split
        ``time_cutoff:cold_users`` / ``time_cutoff:cold_items``).
    """
    pos = train_interactions.where(F.col(C.COL_CONFIDENCE) > 0)
    rel = relevant.select(C.COL_USER_IDX, C.COL_ITEM_IDX).distinct()
    counts = pos.groupBy(C.COL_USER_IDX).agg(F.countDistinct(C.COL_ITEM_IDX).alias("_n"))
    cold_users = (
        rel.join(counts, C.COL_USER_IDX, "left")
        .where(F.coalesce(F.col("_n"), F.lit(0)) <= F.lit(int(max_user_events)))
        .select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    )
    cold_items = rel.join(pos.select(C.COL_ITEM_IDX).distinct(), C.COL_ITEM_IDX, "left_anti").select(
        C.COL_USER_IDX, C.COL_ITEM_IDX
    )
    return {"cold_users": cold_users, "cold_items": cold_items}


def evaluate(
    spark: SparkSession,
    conf: Config,
    events: DataFrame,
    items: DataFrame,
    users: DataFrame,
    user_index: DataFrame,
    item_index: DataFrame,
    algorithms: Sequence[str],
    run_date: dt.date,
    work_dir: str,
) -> DataFrame:
    """Fit every algorithm on the training side of the protocol's split and score it on the test side.

    Returns
    -------
    DataFrame
        ``gold/model_metrics`` rows (schema :data:`vidrec.data.schemas.MODEL_METRICS`).
    """
    ec = conf.evaluation
    k = ec.k
    split_name = PROTOCOLS[ec.protocol]
    h = holdout(
        spark,
        conf,
        events,
        items,
        users,
        user_index,
        item_index,
        protocol=ec.protocol,
        fraction=ec.test_fraction,
        seed=ec.seed,
        run_date=run_date.isoformat(),
        work_dir=work_dir,
        n=k,
        explain=False,  # reasons are for the served lists, not for metrics
    )
    ctx = h.ctx
    n_targets = ctx.target_users.count()
    n_catalog = item_index.count()
    log.info("evaluate: %s; %d test users with relevant items", h.description, n_targets)
    train_i = ctx.interactions
    positive_train = train_i.where(F.col(C.COL_CONFIDENCE) > 0).select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    slices = {"": h.relevant_known}
    if ec.slices:
        for name, pairs in cold_slices(train_i, h.relevant, conf.hybrid.cold_start_max_events).items():
            slices[f":{name}"] = pairs.cache()
    rows: list[Row] = []
    start = time.perf_counter()
    fitted = fit_all(ctx, algorithms, stage="evaluate", choose_weights=choose_weights)
    log.info("evaluate: %d generators fitted in %.1f s", len(fitted), time.perf_counter() - start)
    start = time.perf_counter()
    all_recs = union_all(
        [
            fitted[a].recs.select(F.lit(a).alias(C.COL_ALGORITHM), C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_RANK)
            for a in algorithms
        ]
    )
    all_relevant = union_all(
        [pairs.select(F.lit(s).alias(_SLICE), C.COL_USER_IDX, C.COL_ITEM_IDX) for s, pairs in slices.items()]
    )
    # every algorithm against every slice in one job, and the beyond-accuracy metrics in another
    ranking = {
        (r[C.COL_ALGORITHM], r[_SLICE]): r
        for r in metrics.ranking_metrics_table(
            all_recs, all_relevant, k, [C.COL_ALGORITHM], [_SLICE]
        ).collect()
    }
    beyond = {
        r[C.COL_ALGORITHM]: r
        for r in metrics.beyond_accuracy_table(
            all_recs, ctx.items, positive_train, n_catalog, k, [C.COL_ALGORITHM]
        ).collect()
    }
    for algo in algorithms:
        version = fitted[algo].model_version
        for suffix in slices:
            found = ranking.get((algo, suffix))
            if found is None and suffix:
                continue  # nobody in this slice
            values = metrics.with_f1(
                {m: float(found[m] or 0.0) if found else 0.0 for m in metrics.RANKING_AVERAGES}
            )
            users_evaluated = int(found["users"]) if found else 0
            if not suffix:
                extra = beyond.get(algo)
                for m in ("coverage", "diversity", "novelty"):
                    values[m] = float(extra[m] or 0.0) if extra is not None else 0.0
            split = split_name + suffix
            rows += metric_rows(run_date, algo, version, values, k, split)
            rows += metric_rows(run_date, algo, version, {"users_evaluated": users_evaluated}, None, split)
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
    log.info(
        "evaluate: metrics of %d algorithms x %d slices in %.1f s",
        len(algorithms),
        len(slices),
        time.perf_counter() - start,
    )
    for cand in fitted.values():
        cand.recs.unpersist()
    for algo, errs in rating_metrics(train_i, h.held_out, conf.als).items():
        if algo in algorithms:
            version = model_version(f"{algo}-explicit", run_date.isoformat(), conf.als)
            rows += metric_rows(run_date, algo, version, errs, None, split_name)
    for name, df in slices.items():
        if name:
            df.unpersist()
    h.release()
    return spark.createDataFrame(rows, schemas.MODEL_METRICS)
