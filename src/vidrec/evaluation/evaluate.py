"""Offline evaluation: every generator fitted and scored on the same split of the events.

Protocols (``evaluation.protocol``, :mod:`vidrec.evaluation.context`): ``time`` trains on events
before a cut-off and tests on the events after it for users seen in training; relevant is a held-out
(user, item) that was completed, liked, favorited or rated >= 4 and that the user had not already
consumed in training (those are excluded from every list, so they could never be hit). ``chrono``
and ``random`` hold out a share of each user's events; every held-out item is relevant. Metrics at
K go to ``gold/model_metrics``; RMSE/MAE where ratings exist: the rating model
(:mod:`vidrec.models.rating`) as ``als``, the item-mean baseline as ``popularity``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import Config
from vidrec.config.sections import RatingConf
from vidrec.data import matrix, schemas
from vidrec.data.frames import materialise, release
from vidrec.evaluation import metrics
from vidrec.evaluation.blend_weights import carve_dir, choose_weights
from vidrec.evaluation.context import PROTOCOLS, holdout
from vidrec.models.rating import RatingModel, fit_rating_model, rating_model_version, rating_rows
from vidrec.serving.candidates import fit_all
from vidrec.serving.hybrid import WeightChooser, blended_components, searched_lists

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


#: The rating baselines every rating model must beat (bench/rating.py reports both).
BASELINE_GLOBAL_MEAN = "global_mean"
BASELINE_ITEM_MEAN = "item_mean"


def rating_predictions(
    train: DataFrame, test: DataFrame, params: RatingConf, num_blocks: int
) -> tuple[dict[str, DataFrame], RatingModel | None]:
    """Predicted ratings of ``test``'s rated pairs by the rating model and the two baselines.

    Returns ``({"als": .., "item_mean": .., "global_mean": ..}, model)``: DataFrames of
    ``(user_idx, item_idx, prediction)``, every rated test pair predicted (an item without training
    ratings gets the global mean from the item-mean baseline), and the fitted rating model (release
    it once the predictions are used); ``({}, None)`` when either side has no rating. ``als`` is the
    biased matrix factorisation of :mod:`vidrec.models.rating`.
    """
    train_r = rating_rows(train)
    test_r = rating_rows(test).select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    if train_r.limit(1).count() == 0 or test_r.limit(1).count() == 0:
        return {}, None
    model = fit_rating_model(train_r, params, num_blocks)
    mean_row = train_r.agg(F.avg(C.COL_RATING)).first()
    assert mean_row is not None, "an aggregate without grouping returns one row"
    global_mean = float(mean_row[0])
    item_mean = train_r.groupBy(C.COL_ITEM_IDX).agg(F.avg(C.COL_RATING).alias("_m"))
    cols = [C.COL_USER_IDX, C.COL_ITEM_IDX, "prediction"]
    preds = {
        C.ALGO_ALS: model.predict(test_r).select(*cols),
        BASELINE_ITEM_MEAN: test_r.join(item_mean, C.COL_ITEM_IDX, "left").select(
            C.COL_USER_IDX, C.COL_ITEM_IDX, F.coalesce("_m", F.lit(global_mean)).alias("prediction")
        ),
        BASELINE_GLOBAL_MEAN: test_r.withColumn("prediction", F.lit(global_mean)),
    }
    return preds, model


def rating_metrics(
    train: DataFrame, test: DataFrame, params: RatingConf, num_blocks: int = 4
) -> dict[str, dict[str, float]]:
    """RMSE/MAE of the rating model and of the baselines on held-out explicit ratings.

    Returns ``{name: {"rmse": .., "mae": .., "n": ..}}`` for the names of :func:`rating_predictions`;
    empty when either side has no rating. The nightly writes ``als`` (the rating model) and
    ``item_mean`` (as the ``popularity`` row) to ``gold/model_metrics``.
    """
    test_r = rating_rows(test)
    preds, model = rating_predictions(train, test, params, num_blocks)
    out = {name: metrics.rating_errors(pred, test_r) for name, pred in preds.items()}
    if model is not None:
        model.release()
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


def evaluate_warehouse(
    spark: SparkSession,
    conf: Config,
    algorithms: Sequence[str],
    run_date: dt.date,
    work_dir: str,
    weight_chooser: WeightChooser = choose_weights,
) -> DataFrame:
    """:func:`evaluate` over what ``conf.warehouse`` holds up to ``run_date``: its events, catalog,
    profiles (the user index's ids where there is no ``silver/users``) and indexes."""
    return evaluate(
        spark,
        conf,
        *matrix.warehouse_inputs(spark, conf.warehouse, run_date, ids_as_of=False),
        algorithms,
        run_date,
        work_dir,
        weight_chooser,
    )


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
    weight_chooser: WeightChooser = choose_weights,
) -> DataFrame:
    """Fit every algorithm on the training side of the protocol's split and score it on the test side.

    With ``hybrid.tune_weights``, ``weight_chooser`` learns the hybrid's blend on a validation carve of
    the training side (default :func:`~vidrec.evaluation.blend_weights.choose_weights`; the nightly
    passes a :class:`~vidrec.evaluation.blend_weights.RecordingChooser` to store what it chose).

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
    chooser = weight_chooser
    hc = conf.hybrid
    if conf.deep.train.warm_from_carve and C.ALGO_HYBRID in algorithms and hc.tune_weights:
        # the blend's carve first (its fits are from scratch on part of the training side), then the
        # components: a deep model the carve fitted fine-tunes that fit on the whole training side
        choice = weight_chooser(ctx, searched_lists(hc, blended_components(hc, algorithms)), k=k, conf=hc)
        chooser = lambda *_args, **_kwargs: choice  # noqa: E731  (the blend is chosen: hand it over)
        ctx = ctx.replace(warm_start=True, warm_root=carve_dir(work_dir))
        log.info(
            "evaluate: the blend chosen in %.1f s; the carve's deep fits are fine-tuned",
            time.perf_counter() - start,
        )
    fitted = fit_all(ctx, algorithms, stage="evaluate", choose_weights=chooser)
    log.info("evaluate: %d generators fitted in %.1f s", len(fitted), time.perf_counter() - start)
    start = time.perf_counter()
    # computed once and cut from its lineage: over the plan of every model's cached lists (the
    # hybrid's above all) each metrics job spent most of its time in the driver, not in tasks
    all_recs = union_all(
        [
            fitted[a].recs.select(F.lit(a).alias(C.COL_ALGORITHM), C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_RANK)
            for a in algorithms
        ]
    )
    all_recs = materialise(all_recs)
    for cand in fitted.values():  # their rows now live in all_recs
        release(cand.recs)
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
    release(all_recs)
    rating_algos = {C.ALGO_ALS: C.ALGO_ALS, BASELINE_ITEM_MEAN: C.ALGO_POPULARITY}
    for name, errs in rating_metrics(train_i, h.held_out, conf.rating, conf.als.num_blocks).items():
        rated = rating_algos.get(name)
        if rated is not None and rated in algorithms:
            if rated == C.ALGO_ALS:
                version = rating_model_version(run_date.isoformat(), conf.rating)
            else:
                version = fitted[rated].model_version
            values = {"rmse": errs["rmse"], "mae": errs["mae"]}
            rows += metric_rows(run_date, rated, version, values, None, split_name)
            log.info(
                "evaluate: %-10s rmse=%.4f mae=%.4f (%d ratings)", rated, errs["rmse"], errs["mae"], errs["n"]
            )
    for name, df in slices.items():
        if name:
            df.unpersist()
    for cand in fitted.values():
        cand.release_artifacts()
    h.release()
    return spark.createDataFrame(rows, schemas.MODEL_METRICS)
