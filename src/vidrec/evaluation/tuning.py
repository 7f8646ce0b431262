"""Hyper-parameter tuning on a validation split carved from the training side of an evaluation protocol.

The test side of the protocol is never read: :func:`validation` keeps only the training events of
the evaluation split and carves *those* with the protocol's own split
(:func:`vidrec.evaluation.context.holdout`: ``random``, a per-user random share seeded by
``tune.seed``; ``chrono``, each user's last ``tune.validation_fraction`` of training events; ``time``,
a global cut-off at the ``1 - validation_fraction`` quantile of training time). Relevance on the
validation side follows the protocol (every held-out item; the time protocol: completed, liked,
favorited or rated >= 4).

Search (:func:`~vidrec.evaluation.search.coordinate_search`): for each algorithm, coordinate ascent
over its space (``tune.spaces.<algorithm>``: parameter -> values) from the current configuration:
each value of each parameter with the others fixed, keeping the best NDCG@k, for ``tune.rounds``
rounds or until nothing improves. Every configuration is fitted once on the validation context and
its lists are scored on the driver (:func:`~vidrec.evaluation.metrics.ranking_metrics_local`).

The hybrid is tuned last by the one blend-weight search
(:func:`~vidrec.evaluation.search.blend_search`): the validation lists of each algorithm's chosen
configuration are normalised as :func:`vidrec.serving.hybrid.normalise_scores` does (``rrf`` or
``minmax``), and the warm-tier weights, the normalisation and ``rrf_k`` are chosen by coordinate
ascent on NDCG@k, milliseconds per blend.

Outputs (:func:`run`): every trial as a row of ``ops/tuning_trials`` and as a nested MLflow run, and
the chosen values as a configuration layer (:mod:`vidrec.evaluation.trials`), loadable with ``--conf``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd
from pyspark.sql import SparkSession

from vidrec import constants as C
from vidrec.config import Config
from vidrec.config.sections import PROTOCOLS, to_mapping
from vidrec.data import matrix, tables
from vidrec.evaluation.context import Holdout, holdout, split_events
from vidrec.evaluation.metrics import ranking_metrics_local
from vidrec.evaluation.search import LocalBlend, blend_search, coordinate_search, params_key
from vidrec.evaluation.tracking import Tracker
from vidrec.evaluation.trials import (
    TRIALS_TABLE,
    Trial,
    TuneResult,
    layer_for,
    section_path,
    write_trials,
    write_tuned_conf,
)
from vidrec.models import registry
from vidrec.models.deep.params import MODEL_NAMES as DEEP_MODELS
from vidrec.models.deep.params import model_params

log = logging.getLogger(__name__)

#: Order in which algorithms are tuned (cheap first; the hybrid, which needs the others, last).
ORDER: tuple[str, ...] = (
    C.ALGO_POPULARITY,
    C.ALGO_EASE,
    C.ALGO_ITEMKNN,
    C.ALGO_ALS,
    C.ALGO_CONTENT,
    C.ALGO_MULTVAE,
    C.ALGO_NCF,
    C.ALGO_SEQUENCE,
    C.ALGO_GRU,
    C.ALGO_TEXT,
    C.ALGO_FUSION,
    C.ALGO_HYBRID,
)
#: Hybrid parameters searched besides the weights.
BLEND_KEYS = ("score_norm", "rrf_k")


# --- the parameters of an algorithm ----------------------------------------------------------------


def current_params(conf: Config, algorithm: str, keys: Sequence[str]) -> dict[str, Any]:
    """The configuration's value of each of ``keys`` for ``algorithm`` (deep models: ``train`` + model)."""
    if algorithm in DEEP_MODELS:
        section = model_params(conf.deep, algorithm, conf.evaluation.protocol)
    else:
        section = to_mapping(getattr(conf, algorithm))
    missing = [k for k in keys if k not in section]
    if missing:
        raise ValueError(f"tune.spaces.{algorithm} names unknown parameter(s) {missing}")
    return {k: copy.deepcopy(section[k]) for k in keys}


def with_params(conf: Config, algorithm: str, params: Mapping[str, Any]) -> Config:
    """``conf`` with ``params`` set in ``algorithm``'s section (mappings merged key by key)."""
    layer: dict[str, Any] = {}
    node = layer
    for part in section_path(algorithm):
        node = node.setdefault(part, {})
    node.update(copy.deepcopy(dict(params)))
    return conf.override(layer)


def canonical(algorithm: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without the ones that cannot change the result (so equal models are fitted once).

    Item-kNN: ``shrink`` matters only to ``cosine``, ``alpha``/``beta`` only to ``rp3beta``.
    """
    out = dict(params)
    if algorithm == C.ALGO_ITEMKNN and "similarity" in out:
        unused = ("alpha", "beta") if out["similarity"] == "cosine" else ("shrink",)
        for key in unused:
            out.pop(key, None)
    return out


# --- the validation split ----------------------------------------------------------------------------


def validation(
    spark: SparkSession,
    conf: Config,
    events: Any,
    items: Any,
    users: Any,
    user_index: Any,
    item_index: Any,
    protocol: str,
    run_date: dt.date,
    work_dir: str,
) -> Holdout:
    """The validation split carved from the training side of ``protocol``'s evaluation split.

    The evaluation split (``evaluation.test_fraction``, ``evaluation.seed``) keeps its training side
    only; that side is split again by the same protocol with ``tune.validation_fraction`` and
    ``tune.seed``. Lists are ``max(k, hybrid.pool_n)`` long so the blend has its pool; the users
    scored are those with ``evaluation.min_train_events`` fit-side interactions.
    """
    ec, tc = conf.evaluation, conf.tune
    train, _, _ = split_events(events, protocol, ec.test_fraction, ec.seed)
    h = holdout(
        spark,
        conf,
        train,
        items,
        users,
        user_index,
        item_index,
        protocol=protocol,
        fraction=tc.validation_fraction,
        seed=tc.seed,
        run_date=run_date.isoformat(),
        work_dir=work_dir,
        n=max(ec.k, conf.hybrid.pool_n),
        save_model=True,
    )
    h.ctx = h.ctx.replace(target_users=h.relevant_known.select(C.COL_USER_IDX).distinct())
    h.description = f"{h.description} inside the training events"
    return h


def _deep_training_record(work_dir: str, algorithm: str) -> dict[str, Any] | None:
    """``metrics.json`` of a deep model fitted under ``work_dir`` (per-epoch history), if any."""
    from vidrec.models.deep.schema import METRICS_FILE

    path = Path(work_dir) / algorithm / METRICS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _log_model_files(tracker: Tracker, work_dir: str, algorithm: str) -> None:
    """The model files a trial left under its work dir, as MLflow artifacts, without any per-user row.

    A deep model's spec and metrics (not ``model.pt``, whose user embeddings are rows of users); of an
    ALS model its metadata and item factors (not ``userFactors``). So an erased user has nothing in
    the tracking store to erase (docs/privacy.md).
    """
    if algorithm in DEEP_MODELS:
        from vidrec.models.deep.schema import METRICS_FILE, SPEC_FILE

        for name in (METRICS_FILE, SPEC_FILE):
            tracker.log_artifact(Path(work_dir) / algorithm / name, "model")
    elif algorithm == C.ALGO_ALS:
        for part in ("metadata", "itemFactors"):
            tracker.log_artifact(Path(work_dir) / "als_model" / part, f"model/als_model/{part}")


def tune(
    spark: SparkSession,
    conf: Config,
    validation: Holdout,
    algorithms: Sequence[str],
    protocol: str,
    tracker: Tracker,
) -> TuneResult:
    """Search every algorithm of ``algorithms`` on ``validation`` (the hybrid last, over the others).

    Returns
    -------
    TuneResult
        All trials (the chosen one of each algorithm flagged), the chosen parameters per algorithm,
        their validation metrics and the configuration layer holding them.
    """
    tc = conf.tune
    k = int(conf.evaluation.k)
    metric = "ndcg"
    ordered = [a for a in ORDER if a in algorithms]
    unknown = [a for a in algorithms if a not in ORDER]
    if unknown:
        raise ValueError(f"tune: no tuning for algorithm(s) {unknown}")
    trials: list[Trial] = []
    chosen: dict[str, dict[str, Any]] = {}
    chosen_metrics: dict[str, dict[str, float]] = {}
    best_lists: dict[str, pd.DataFrame] = {}
    vctx = validation.ctx
    relevant_local = validation.relevant_known.toPandas()
    spaces = tc.spaces or {}
    for algo in ordered:
        if algo == C.ALGO_HYBRID:
            continue
        space = {p: list(v) for p, v in (spaces.get(algo) or {}).items()}
        start = current_params(conf, algo, list(space))
        best_for_algo: dict[str, Any] = {"value": -1.0}

        def objective(
            params: dict[str, Any], algo: str = algo, best: dict[str, Any] = best_for_algo
        ) -> float:
            number = len([t for t in trials if t.algorithm == algo]) + 1
            work_dir = f"{vctx.work_dir}/{algo}/trial-{number:03d}"
            tctx = vctx.replace(conf=with_params(conf, algo, params), work_dir=work_dir)
            with tracker.run(
                f"{protocol}/{algo}/{number:03d}", {"algorithm": algo, "protocol": protocol}
            ) as rid:
                tracker.log_params(params)
                t0 = time.perf_counter()
                cand = registry.get(algo)(tctx)
                lists = cand.recs.toPandas()
                seconds = time.perf_counter() - t0
                cand.release_artifacts()  # a search fits hundreds of trials in one session
                values = ranking_metrics_local(lists, relevant_local, k)
                record = _deep_training_record(work_dir, algo)
                extra: dict[str, float] = {}
                if record is not None:
                    tracker.log_history(record.get("history") or [])
                    extra = {
                        "epochs_done": float(record.get("epochs_done", 0)),
                        "best_epoch": float(record.get("best_epoch", 0)),
                        "rows_per_s_per_process": float(record.get("rows_per_s_per_process", 0.0)),
                        "train_seconds": float(record.get("train_seconds", 0.0)),
                    }
                tracker.log_metrics({**values, **extra, "seconds": seconds})
                _log_model_files(tracker, work_dir, algo)
            trial = Trial(algo, number, dict(params), {**values, **extra}, seconds, mlflow_run_id=rid)
            trials.append(trial)
            log.info(
                "tune: %-10s trial %3d ndcg@%d=%.4f precision=%.4f (%.1f s) %s",
                algo,
                number,
                k,
                values["ndcg"],
                values["precision"],
                seconds,
                params_key(params),
            )
            if values[metric] > best["value"] + 1e-12:
                best.update(value=values[metric], lists=lists, trial=trial)
            return values[metric]

        # cast: mypy cannot infer the type of a lambda with a default argument (a=algo)
        params, value = coordinate_search(
            space,
            start,
            objective,
            int(tc.rounds),
            canonicalise=cast(Any, lambda p, a=algo: canonical(a, p)),
        )
        best_trial: Trial = best_for_algo["trial"]
        best_trial.chosen = True
        chosen[algo] = canonical(algo, params) if space else {}
        chosen_metrics[algo] = best_trial.metrics
        best_lists[algo] = best_for_algo["lists"]
        log.info("tune: %s chose %s (validation ndcg@%d=%.4f)", algo, params_key(chosen[algo]), k, value)
    if C.ALGO_HYBRID in ordered:
        chosen[C.ALGO_HYBRID], chosen_metrics[C.ALGO_HYBRID] = _tune_blend(
            conf, best_lists, validation, k, protocol, tracker, trials
        )
    return TuneResult(
        protocol=protocol,
        validation=validation.description,
        metric=f"{metric}@{k}",
        trials=trials,
        chosen=chosen,
        chosen_metrics=chosen_metrics,
        layer=layer_for(chosen),
    )


def _tune_blend(
    conf: Config,
    lists: Mapping[str, pd.DataFrame],
    validation: Holdout,
    k: int,
    protocol: str,
    tracker: Tracker,
    trials: list[Trial],
) -> tuple[dict[str, Any], dict[str, float]]:
    """The hybrid's blend chosen over the chosen lists of the other algorithms (see :func:`blend_search`)."""
    if not lists:
        raise ValueError("tune: the hybrid needs at least one other algorithm to blend")
    hc, tc = conf.hybrid, conf.tune
    space = (tc.spaces or {}).get(C.ALGO_HYBRID) or {}
    norms = [str(v) for v in space.get("score_norm", [hc.score_norm])]
    rrf_ks = [int(v) for v in space.get("rrf_k", [hc.rrf_k])]
    blend = LocalBlend(lists, validation.relevant_known.toPandas(), k)
    start = time.perf_counter()
    tried: list[tuple[dict[str, Any], dict[str, float]]] = []
    with tracker.run(f"{protocol}/hybrid", {"algorithm": C.ALGO_HYBRID, "protocol": protocol}) as rid:

        def on_trial(params: dict[str, Any], values: dict[str, float]) -> None:
            tried.append((params, values))
            tracker.log_metrics({"blend_ndcg": values["ndcg"]}, step=len(tried))

        params, value = blend_search(
            blend,
            hc.weights,
            hc.score_norm,
            int(hc.rrf_k),
            norms,
            rrf_ks,
            tc.blend_grid,
            int(tc.blend_rounds),
            on_trial,
        )
        seconds = time.perf_counter() - start
        best_values = blend.metrics(params["weights"], params["score_norm"], params["rrf_k"])
        tracker.log_params(params)
        tracker.log_metrics({**best_values, "blends_tried": len(tried), "seconds": seconds})
    per_trial = seconds / max(1, len(tried))
    chosen_key = params_key(params)
    for number, (p, values) in enumerate(tried, start=1):
        trials.append(
            Trial(
                C.ALGO_HYBRID,
                number,
                p,
                values,
                per_trial,
                chosen=params_key(p) == chosen_key,
                mlflow_run_id=rid,
            )
        )
    flagged = [t for t in trials if t.algorithm == C.ALGO_HYBRID and t.chosen]
    for extra in flagged[1:]:  # the same blend may have been scored in two searches: flag it once
        extra.chosen = False
    # every algorithm of base.yaml's weights gets a value: the blended ones their chosen weight, others 0
    weights = {a: 0.0 for a in hc.weights}
    weights.update({a: float(w) for a, w in params["weights"].items()})
    log.info(
        "tune: hybrid chose %s over %d blends (validation ndcg@%d=%.4f)", chosen_key, len(tried), k, value
    )
    return (
        {"score_norm": params["score_norm"], "rrf_k": int(params["rrf_k"]), "weights": weights},
        best_values,
    )


def run(
    spark: SparkSession,
    conf: Config,
    run_date: dt.date,
    protocol: str | None = None,
    algorithms: Sequence[str] | None = None,
    out_path: str | Path | None = None,
    env_file: str | Path | None = None,
) -> TuneResult:
    """The tuning job: read the warehouse, tune, write the trials, the chosen conf and MLflow runs.

    Parameters
    ----------
    spark : SparkSession
    conf : mapping
        The configuration (``warehouse``, ``evaluation``, ``tune``, ``tracking`` and every
        algorithm's section).
    run_date : datetime.date
        Events up to this date are used; the trials are written under it.
    protocol : str, optional
        Evaluation protocol whose training side is tuned on; default ``evaluation.protocol``.
    algorithms : sequence of str, optional
        Default ``tune.algorithms``, or every generator in ``models`` when that is empty.
    out_path : path, optional
        Where the tuned configuration goes (not written when ``None``).
    env_file : path, optional
        The environment file ``conf`` was loaded from (the base of the tuned file).
    """
    protocol = protocol or conf.evaluation.protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    tc = conf.tune
    algos = list(algorithms or tc.algorithms or conf.models)
    wh = conf.warehouse
    users = tables.read(spark, wh, C.T_USERS) if tables.exists(spark, wh, C.T_USERS) else None
    user_index = tables.read(spark, wh, C.T_USER_INDEX)
    if users is None:
        users = user_index.select(C.COL_USER)
    work_dir = f"{wh}/{C.MODELS}/{run_date.isoformat()}/tune/{protocol}"
    start = time.perf_counter()
    held = validation(
        spark,
        conf,
        matrix.events_up_to(spark, wh, run_date),
        tables.read(spark, wh, C.T_ITEMS),
        users,
        user_index,
        tables.read(spark, wh, C.T_ITEM_INDEX),
        protocol,
        run_date,
        work_dir,
    )
    tracker = Tracker(conf.tracking)
    with tracker.run(f"tune-{protocol}-{run_date.isoformat()}", {"protocol": protocol}) as parent:
        tracker.log_params(
            {
                "protocol": protocol,
                "run_date": run_date.isoformat(),
                "algorithms": ",".join(algos),
                "validation": held.description,
                "validation_fraction": tc.validation_fraction,
                "seed": tc.seed,
                "rounds": tc.rounds,
            }
        )
        try:
            result = tune(spark, conf, held, algos, protocol, tracker)
        finally:
            held.release()
        result.mlflow_run_id = parent
        tracker.log_metrics({f"{a}_ndcg": m.get("ndcg", 0.0) for a, m in result.chosen_metrics.items()})
        tracker.log_params({"chosen": result.chosen})
        if out_path is not None:
            result.conf_path = str(write_tuned_conf(out_path, env_file, result, run_date))
            tracker.log_artifact(result.conf_path, "conf")
    n = write_trials(spark, wh, result, run_date)
    log.info(
        "tune: %d trials of %s written to %s in %.1f s; chosen conf %s",
        n,
        ", ".join(algos),
        tables.catalog_name(TRIALS_TABLE),
        time.perf_counter() - start,
        result.conf_path or "(not written)",
    )
    return result
