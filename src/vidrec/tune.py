"""Hyper-parameter tuning on a validation split carved from the training side of an evaluation protocol.

The test side of the protocol is never read: :func:`training_side` returns only the training events of
the evaluation split, and :func:`carve_validation` splits *those* the same way the protocol splits all
events (``random``: a per-user random split of the training events, seeded by ``tune.seed``;
``chrono``: each user's last ``tune.validation_fraction`` of training events; ``time``: a global
cut-off at the ``1 - validation_fraction`` quantile of training time). Relevance on the validation
side follows the protocol (every held-out item; the time protocol: completed, liked, favorited or
rated >= 4).

Search (:func:`coordinate_search`): for each algorithm, coordinate ascent over its space
(``tune.spaces.<algorithm>``: parameter -> values) from the current configuration: each value of
each parameter with the others fixed, keeping the best NDCG@k, for ``tune.rounds`` rounds or until
nothing improves. Every configuration is fitted once on the validation context and its lists are
scored by :func:`ranking_metrics_local` (the definitions of :mod:`vidrec.metrics`, on the driver).

The hybrid (:func:`blend_search`) is tuned last, on the driver: the validation lists of each
algorithm's chosen configuration are normalised as :func:`vidrec.hybrid.normalise_scores` does
(``rrf`` or ``minmax``), and the warm-tier weights, the normalisation and ``rrf_k`` are chosen by
coordinate ascent on NDCG@k — milliseconds per blend, so the grid can be fine.

Outputs (:func:`run`): every trial as a row of the Delta table ``ops/tuning_trials`` (one commit per
run date and protocol; a rerun replaces it), every trial as a nested MLflow run
(:mod:`vidrec.tracking`), and the chosen values as a configuration layer (:func:`write_tuned_conf`):
the environment file the job ran with, plus the chosen values, loadable with ``--conf``.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from vidrec import constants as C
from vidrec import generators, tables
from vidrec.deep.params import MODEL_NAMES as DEEP_MODELS
from vidrec.generators import FitContext
from vidrec.tracking import Tracker

log = logging.getLogger(__name__)

#: Conf section of this module.
CONF_SECTION = "tune"
#: ``ops/tuning_trials``: one row per trial (hybrid: per blend tried).
TRIALS_TABLE: tables.Table = (C.OPS, "tuning_trials")
TRIALS_SCHEMA = StructType(
    [
        StructField(C.COL_RUN_DATE, DateType(), False),
        StructField("run_id", StringType(), False),
        StructField("protocol", StringType(), False),
        StructField(C.COL_ALGORITHM, StringType(), False),
        StructField("trial", IntegerType(), False),
        StructField("params", StringType(), False),
        StructField(C.COL_METRIC, StringType(), False),
        StructField(C.COL_VALUE, DoubleType(), False),
        StructField("chosen", BooleanType(), False),
        StructField("seconds", DoubleType(), False),
        StructField("metrics", StringType(), False),
        StructField("mlflow_run_id", StringType(), True),
        StructField("tuned_at", TimestampType(), False),
    ]
)
PROTOCOLS = ("time", "chrono", "random")
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
    C.ALGO_TEXT,
    C.ALGO_FUSION,
    C.ALGO_HYBRID,
)
#: Hybrid parameters searched besides the weights.
BLEND_KEYS = ("score_norm", "rrf_k")
RANKING_METRICS = ("precision", "recall", "f1", "ndcg", "map", "hit_rate", "mrr")


# --- configuration ------------------------------------------------------------------------------


def tune_conf(conf: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tune`` section of ``conf`` (declared with its defaults in ``conf/base.yaml``).

    Raises
    ------
    ValueError
        On a validation fraction outside (0, 1), ``rounds < 1``, an empty or negative blend grid, or a
        space that names an unknown algorithm or has an empty list of values.
    """
    tc = dict(conf.get(CONF_SECTION) or {})
    missing = [
        k
        for k in (
            "validation_fraction",
            "seed",
            "rounds",
            "algorithms",
            "spaces",
            "blend_grid",
            "blend_rounds",
        )
        if k not in tc
    ]
    if missing:
        raise ValueError(f"tune section lacks {', '.join(missing)} (see conf/base.yaml)")
    if not 0.0 < float(tc["validation_fraction"]) < 1.0:
        raise ValueError(f"tune.validation_fraction must be in (0, 1), got {tc['validation_fraction']}")
    for key in ("rounds", "blend_rounds"):
        if int(tc[key]) < 1:
            raise ValueError(f"tune.{key} must be >= 1, got {tc[key]}")
    grid = [float(v) for v in tc["blend_grid"]]
    if not grid or min(grid) < 0:
        raise ValueError(f"tune.blend_grid must be non-empty and >= 0, got {tc['blend_grid']}")
    for algo, space in (tc["spaces"] or {}).items():
        if algo not in C.ALGORITHMS:
            raise ValueError(
                f"tune.spaces names unknown algorithm '{algo}' (known: {', '.join(C.ALGORITHMS)})"
            )
        for param, values in (space or {}).items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"tune.spaces.{algo}.{param} must be a non-empty list, got {values!r}")
    unknown = [a for a in tc["algorithms"] if a not in C.ALGORITHMS]
    if unknown:
        raise ValueError(f"tune.algorithms names unknown algorithm(s) {unknown}")
    return tc


def section_path(algorithm: str) -> tuple[str, ...]:
    """Where an algorithm's parameters live in the configuration (``deep.<model>`` for deep models)."""
    return ("deep", algorithm) if algorithm in DEEP_MODELS else (algorithm,)


def current_params(conf: Mapping[str, Any], algorithm: str, keys: Sequence[str]) -> dict[str, Any]:
    """The configuration's value of each of ``keys`` for ``algorithm`` (deep models: resolved defaults)."""
    if algorithm in DEEP_MODELS:
        from vidrec.deep.params import model_params

        section = model_params(conf, algorithm)
    else:
        node: Any = conf
        for part in section_path(algorithm):
            node = (node or {}).get(part) or {}
        section = dict(node)
        if algorithm == C.ALGO_HYBRID:
            from vidrec.hybrid import hybrid_conf

            section = hybrid_conf(conf)
        elif algorithm == C.ALGO_ITEMKNN:
            from vidrec.itemknn import itemknn_conf

            section = itemknn_conf(conf)
    missing = [k for k in keys if k not in section]
    if missing:
        raise ValueError(f"tune.spaces.{algorithm} names unknown parameter(s) {missing}")
    return {k: copy.deepcopy(section[k]) for k in keys}


def with_params(conf: Mapping[str, Any], algorithm: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``conf`` with ``params`` set in ``algorithm``'s section."""
    out = copy.deepcopy(dict(conf))
    node = out
    for part in section_path(algorithm):
        node = node.setdefault(part, {})
    for key, value in params.items():
        if isinstance(value, Mapping) and isinstance(node.get(key), Mapping):
            node[key] = {**node[key], **copy.deepcopy(dict(value))}
        else:
            node[key] = copy.deepcopy(value)
    return out


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


# --- validation split ---------------------------------------------------------------------------


def training_side(events: DataFrame, protocol: str, evaluation: Mapping[str, Any]) -> DataFrame:
    """The training events of the evaluation split of ``protocol`` (its test side is dropped unread).

    Parameters
    ----------
    events : DataFrame
        All events (``event_id``, ``user_id``, ``item_id``, ``ts``...).
    protocol : str
        ``time``, ``chrono`` or ``random``.
    evaluation : mapping
        The ``evaluation`` section (``test_fraction``, ``seed``).
    """
    from vidrec.splits import per_user_chrono_split, per_user_random_split, time_cutoff_split

    fraction = float(evaluation["test_fraction"])
    if protocol == "time":
        return time_cutoff_split(events, fraction)[0]
    if protocol == "chrono":
        return per_user_chrono_split(events, fraction)[0]
    if protocol == "random":
        return per_user_random_split(events, 1.0 - fraction, seed=int(evaluation["seed"]))[0]
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def carve_validation(
    train_events: DataFrame, protocol: str, fraction: float, seed: int
) -> tuple[DataFrame, DataFrame, str]:
    """Split training events like ``protocol`` splits all events: ``(fit, validation, description)``."""
    from vidrec.splits import per_user_chrono_split, per_user_random_split, time_cutoff_split

    if protocol == "time":
        fit, val, cutoff = time_cutoff_split(train_events, fraction)
        return fit, val, f"time cut-off {cutoff.isoformat()} inside the training events"
    if protocol == "chrono":
        fit, val = per_user_chrono_split(train_events, fraction)
        return fit, val, f"each user's last {fraction:.0%} of training events"
    if protocol == "random":
        fit, val = per_user_random_split(train_events, 1.0 - fraction, seed=seed)
        return fit, val, f"per-user random {fraction:.0%} of training events, seed {seed}"
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


@dataclass
class Validation:
    """The validation context and what is scored against it."""

    ctx: FitContext
    relevant: DataFrame
    relevant_local: pd.DataFrame
    description: str
    cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        """Unpersist the cached frames."""
        for df in self.cached:
            df.unpersist()


def validation_context(
    spark: SparkSession,
    conf: Mapping[str, Any],
    events: DataFrame,
    items: DataFrame,
    users: DataFrame,
    user_index: DataFrame,
    item_index: DataFrame,
    protocol: str,
    run_date: dt.date,
    work_dir: str,
) -> Validation:
    """The fit context of the validation split carved from the training side of ``protocol``.

    Mirrors :func:`vidrec.evaluate.evaluate` on the carved split: interactions of the fit side, seen
    pairs excluded, relevant validation pairs of users with ``evaluation.min_train_events``
    interactions, lists of ``max(k, hybrid.pool_n)`` so the blend has its pool.
    """
    from vidrec.evaluate import relevant_pairs, seen_pairs, with_indexes
    from vidrec.hybrid import hybrid_conf
    from vidrec.matrix import build_interactions

    tc, ec = tune_conf(conf), conf["evaluation"]
    train = training_side(events, protocol, ec)
    fit_ev, val_ev, desc = carve_validation(
        train, protocol, float(tc["validation_fraction"]), int(tc["seed"])
    )
    fit_ev = with_indexes(fit_ev, user_index, item_index).cache()
    weights = conf["matrix"]["weights"]
    fit_i = build_interactions(fit_ev, items, user_index, item_index, weights).cache()
    val_i = build_interactions(val_ev, items, user_index, item_index, weights)
    seen = seen_pairs(fit_i, conf["recommend"]["exclude_played"]).cache()
    held = relevant_pairs(val_i) if protocol == "time" else val_i.select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    known = (
        fit_i.groupBy(C.COL_USER_IDX)
        .agg(F.count(F.lit(1)).alias("_n"))
        .where(F.col("_n") >= int(ec["min_train_events"]))
    )
    relevant = (
        held.join(seen, [C.COL_USER_IDX, C.COL_ITEM_IDX], "left_anti")
        .join(known.select(C.COL_USER_IDX), C.COL_USER_IDX, "left_semi")
        .cache()
    )
    relevant_local = relevant.toPandas()
    targets = relevant.select(C.COL_USER_IDX).distinct().cache()
    items_idx = items.join(item_index.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM).cache()
    users_idx = users.join(user_index.select(C.COL_USER, C.COL_USER_IDX), C.COL_USER, "right")
    n = max(int(ec["k"]), int(hybrid_conf(conf)["pool_n"]))
    ctx = FitContext(
        spark=spark,
        conf=dict(conf),
        interactions=fit_i,
        events=fit_ev,
        items=items_idx,
        users=users_idx,
        target_users=targets,
        seen=seen,
        n=n,
        work_dir=work_dir,
        run_date=run_date.isoformat(),
        extras={"save_model": True},
    )
    n_users = int(relevant_local[C.COL_USER_IDX].nunique()) if len(relevant_local) else 0
    log.info(
        "tune: validation = %s: %d users, %d relevant pairs (the %s test side is not read)",
        desc,
        n_users,
        len(relevant_local),
        protocol,
    )
    return Validation(
        ctx, relevant, relevant_local, desc, [fit_ev, fit_i, seen, relevant, targets, items_idx]
    )


# --- metrics on the driver ----------------------------------------------------------------------


def ranking_metrics_local(recs: pd.DataFrame, relevant: pd.DataFrame, k: int) -> dict[str, float]:
    """:func:`vidrec.metrics.ranking_metrics` on the driver, for lists already collected.

    Parameters
    ----------
    recs : pandas.DataFrame
        ``(user_idx, item_idx, rank)``, ranks 1..n per user.
    relevant : pandas.DataFrame
        ``(user_idx, item_idx)`` relevant pairs; the users evaluated are those in it.
    k : int

    Returns
    -------
    dict
        ``precision, recall, f1, ndcg, map, hit_rate, mrr`` (means over the relevant users; a user
        with no list scores 0) and ``users``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rel = relevant[[C.COL_USER_IDX, C.COL_ITEM_IDX]].drop_duplicates()
    if rel.empty:
        return {**{m: 0.0 for m in RANKING_METRICS}, "users": 0.0}
    users, n_rel = np.unique(rel[C.COL_USER_IDX].to_numpy(np.int64), return_counts=True)
    top = recs.loc[recs[C.COL_RANK] <= k, [C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_RANK]]
    top = top[top[C.COL_USER_IDX].isin(users)].sort_values([C.COL_USER_IDX, C.COL_RANK], kind="stable")
    u = top[C.COL_USER_IDX].to_numpy(np.int64)
    rank = top[C.COL_RANK].to_numpy(np.float64)
    width = int(max(rel[C.COL_ITEM_IDX].max(), top[C.COL_ITEM_IDX].max() if len(top) else 0)) + 1
    rel_codes = rel[C.COL_USER_IDX].to_numpy(np.int64) * width + rel[C.COL_ITEM_IDX].to_numpy(np.int64)
    hit = np.isin(u * width + top[C.COL_ITEM_IDX].to_numpy(np.int64), rel_codes).astype(np.float64)
    pos = np.searchsorted(users, u)
    n_users = len(users)
    hits = np.bincount(pos, weights=hit, minlength=n_users)
    dcg = np.bincount(pos, weights=hit / np.log2(rank + 1.0), minlength=n_users)
    disc = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    ideal_n = np.minimum(n_rel, k)
    # hits so far within each user's list (sorted by rank), for precision at each hit
    group_start = np.r_[0, np.flatnonzero(np.diff(pos)) + 1] if len(pos) else np.zeros(0, np.int64)
    cum = np.cumsum(hit)
    offset = np.repeat(cum[group_start] - hit[group_start], np.diff(np.r_[group_start, len(pos)]))
    ap = np.bincount(pos, weights=hit * (cum - offset) / rank, minlength=n_users) / ideal_n
    first = np.full(n_users, np.inf)
    np.minimum.at(first, pos[hit > 0], rank[hit > 0])
    out = {
        "precision": float(np.mean(hits / k)),
        "recall": float(np.mean(hits / n_rel)),
        "ndcg": float(np.mean(dcg / disc[ideal_n])),
        "map": float(np.mean(ap)),
        "hit_rate": float(np.mean(hits > 0)),
        "mrr": float(np.mean(np.where(np.isfinite(first), 1.0 / first, 0.0))),
    }
    p, r = out["precision"], out["recall"]
    out["f1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    out["users"] = float(n_users)
    return out


# --- search -------------------------------------------------------------------------------------


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def coordinate_search(
    space: Mapping[str, Sequence[Any]],
    start: Mapping[str, Any],
    objective: Callable[[dict[str, Any]], float],
    rounds: int = 2,
    canonicalise: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], float]:
    """Coordinate ascent: the best parameters found and their objective (higher is better).

    From ``start``, for each parameter in turn, every value of its list with the others fixed; the
    best so far is kept (ties keep the earlier). Stops after ``rounds`` rounds or a round without
    improvement. ``objective`` is called once per distinct configuration (after ``canonicalise``).
    """
    cache: dict[str, float] = {}

    def score(params: dict[str, Any]) -> float:
        key = _key(canonicalise(params) if canonicalise else params)
        if key not in cache:
            cache[key] = float(objective(dict(params)))
        return cache[key]

    best = dict(start)
    best_value = score(best)
    for _ in range(int(rounds)):
        improved = False
        for name, values in space.items():
            for value in values:
                trial = {**best, name: value}
                if trial == best:
                    continue
                value_ = score(trial)
                if value_ > best_value + 1e-12:
                    best, best_value, improved = trial, value_, True
        if not improved:
            break
    return best, best_value


def normalise_local(recs: pd.DataFrame, method: str, rrf_k: int) -> np.ndarray:
    """:func:`vidrec.hybrid.normalise_scores` on a collected list: one value per row of ``recs``."""
    if method == "rrf":
        return (rrf_k + 1.0) / (rrf_k + recs[C.COL_RANK].to_numpy(np.float64))
    if method == "minmax":
        by_user = recs.groupby(C.COL_USER_IDX)[C.COL_SCORE]
        lo, hi = by_user.transform("min").to_numpy(), by_user.transform("max").to_numpy()
        s = recs[C.COL_SCORE].to_numpy(np.float64)
        span = hi - lo
        return np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
    raise ValueError(f"score normalisation must be 'rrf' or 'minmax', got {method!r}")


class LocalBlend:
    """Weighted blends of collected candidate lists, ranked and scored on the driver.

    Parameters
    ----------
    lists : mapping
        Algorithm -> its validation lists ``(user_idx, item_idx, score, rank)``.
    relevant : pandas.DataFrame
        ``(user_idx, item_idx)`` relevant validation pairs.
    k : int
    """

    def __init__(self, lists: Mapping[str, pd.DataFrame], relevant: pd.DataFrame, k: int) -> None:
        self.names = sorted(lists)
        self.k = int(k)
        self.relevant = relevant
        frames = [
            lists[name][[C.COL_USER_IDX, C.COL_ITEM_IDX]].assign(_g=g) for g, name in enumerate(self.names)
        ]
        stacked = pd.concat(frames, ignore_index=True)
        pairs = stacked[[C.COL_USER_IDX, C.COL_ITEM_IDX]].drop_duplicates().reset_index(drop=True)
        self.pairs = pairs.sort_values([C.COL_USER_IDX, C.COL_ITEM_IDX], kind="stable").reset_index(drop=True)
        self._row = {
            name: self.pairs.reset_index()
            .merge(lists[name][[C.COL_USER_IDX, C.COL_ITEM_IDX]].reset_index(names="_src"))
            .sort_values("_src")["index"]
            .to_numpy()
            for name in self.names
        }
        self._lists = lists
        self._present = np.zeros((len(self.pairs), len(self.names)), dtype=bool)
        for g, name in enumerate(self.names):
            self._present[self._row[name], g] = True
        self._norm_cache: dict[tuple[str, int], np.ndarray] = {}

    def matrix(self, method: str, rrf_k: int) -> np.ndarray:
        """``(pairs, algorithms)``: each algorithm's normalised value of each pair (0 when absent)."""
        key = (method, int(rrf_k))
        if key not in self._norm_cache:
            m = np.zeros((len(self.pairs), len(self.names)))
            for g, name in enumerate(self.names):
                m[self._row[name], g] = normalise_local(self._lists[name], method, int(rrf_k))
            self._norm_cache[key] = m
        return self._norm_cache[key]

    def recs(self, weights: Mapping[str, float], method: str, rrf_k: int) -> pd.DataFrame:
        """The blended top-k ``(user_idx, item_idx, score, rank)``; ties by lower item first."""
        w = np.array([float(weights.get(name, 0.0)) for name in self.names])
        score = self.matrix(method, rrf_k) @ w
        keep = self._present[:, w > 0].any(axis=1)  # as the Spark blend: pairs some weighted list holds
        out = self.pairs[keep].assign(**{C.COL_SCORE: score[keep]})
        out = out.sort_values(
            [C.COL_USER_IDX, C.COL_SCORE, C.COL_ITEM_IDX], ascending=[True, False, True], kind="stable"
        )
        out[C.COL_RANK] = out.groupby(C.COL_USER_IDX).cumcount() + 1
        return out[out[C.COL_RANK] <= self.k]

    def metrics(self, weights: Mapping[str, float], method: str, rrf_k: int) -> dict[str, float]:
        """Validation ranking metrics of a blend."""
        return ranking_metrics_local(self.recs(weights, method, rrf_k), self.relevant, self.k)


def blend_search(
    blend: LocalBlend,
    start_weights: Mapping[str, float],
    start_norm: str,
    start_rrf_k: int,
    norms: Sequence[str],
    rrf_ks: Sequence[int],
    grid: Sequence[float],
    rounds: int,
    on_trial: Callable[[dict[str, Any], dict[str, float]], None] | None = None,
) -> tuple[dict[str, Any], float]:
    """Choose the hybrid's ``score_norm``, ``rrf_k`` and warm weights by coordinate ascent on NDCG@k.

    Each normalisation (and ``rrf_k`` for ``rrf``) gets its own weight search from ``start_weights``;
    the best of them wins. ``on_trial(params, metrics)`` is called for each blend scored.

    Returns
    -------
    params : dict
        ``score_norm``, ``rrf_k``, ``weights`` (every algorithm of the blend).
    ndcg : float
    """
    names = blend.names
    start = {a: float(start_weights.get(a, 0.0)) for a in names}
    if not any(v > 0 for v in start.values()):
        start = dict.fromkeys(names, 1.0)
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    settings = [(m, int(r)) for m in norms for r in (rrf_ks if m == "rrf" else [start_rrf_k])]
    for method, rrf_k in settings:

        def objective(w: dict[str, Any], method: str = method, rrf_k: int = rrf_k) -> float:
            if not any(v > 0 for v in w.values()):
                return -1.0
            values = blend.metrics(w, method, rrf_k)
            if on_trial is not None:
                on_trial({"score_norm": method, "rrf_k": rrf_k, "weights": dict(w)}, values)
            return values["ndcg"]

        space = {a: [float(v) for v in grid] for a in names}
        weights, value = coordinate_search(space, start, objective, rounds)
        if value > best[0] + 1e-12:
            best = (value, {"score_norm": method, "rrf_k": rrf_k, "weights": weights})
    del start_norm
    return best[1], best[0]


# --- trials -------------------------------------------------------------------------------------


@dataclass
class Trial:
    """One configuration fitted on the validation split and scored."""

    algorithm: str
    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    seconds: float
    chosen: bool = False
    mlflow_run_id: str | None = None


@dataclass
class TuneResult:
    """What :func:`tune` tried and chose."""

    protocol: str
    validation: str
    metric: str
    trials: list[Trial]
    chosen: dict[str, dict[str, Any]]
    chosen_metrics: dict[str, dict[str, float]]
    layer: dict[str, Any]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    conf_path: str | None = None
    mlflow_run_id: str | None = None


def _deep_training_record(work_dir: str, algorithm: str) -> dict[str, Any] | None:
    """``metrics.json`` of a deep model fitted under ``work_dir`` (per-epoch history), if any."""
    from vidrec.deep.train import METRICS_FILE

    path = Path(work_dir) / algorithm / METRICS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _log_model_files(tracker: Tracker, work_dir: str, algorithm: str) -> None:
    """The model files a trial left under its work dir (deep model, ALS model) as MLflow artifacts."""
    if algorithm in DEEP_MODELS:
        from vidrec.deep.train import METRICS_FILE, MODEL_FILE, SPEC_FILE

        for name in (MODEL_FILE, METRICS_FILE, SPEC_FILE):
            tracker.log_artifact(Path(work_dir) / algorithm / name, "model")
    elif algorithm == C.ALGO_ALS:
        tracker.log_artifact(Path(work_dir) / "als_model", "model/als_model")


def layer_for(chosen: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The configuration layer of the chosen values (``deep.<model>`` for deep models).

    The hybrid's chosen weights are written for every algorithm it blended (others keep theirs).
    """
    out: dict[str, Any] = {}
    for algo, params in chosen.items():
        if not params:
            continue
        node = out
        for part in section_path(algo):
            node = node.setdefault(part, {})
        for key, value in params.items():
            node[key] = copy.deepcopy(value)
    return out


def tune(
    spark: SparkSession,
    conf: Mapping[str, Any],
    validation: Validation,
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
    tc = tune_conf(conf)
    k = int(conf["evaluation"]["k"])
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
    spaces = tc["spaces"] or {}
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
            tctx = dataclasses.replace(vctx, conf=with_params(conf, algo, params), work_dir=work_dir)
            with tracker.run(
                f"{protocol}/{algo}/{number:03d}", {"algorithm": algo, "protocol": protocol}
            ) as rid:
                tracker.log_params(params)
                t0 = time.perf_counter()
                cand = generators.get(algo)(tctx)
                lists = cand.recs.toPandas()
                seconds = time.perf_counter() - t0
                values = ranking_metrics_local(lists, validation.relevant_local, k)
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
                _key(params),
            )
            if values[metric] > best["value"] + 1e-12:
                best.update(value=values[metric], lists=lists, trial=trial)
            return values[metric]

        params, value = coordinate_search(
            space, start, objective, int(tc["rounds"]), canonicalise=lambda p, a=algo: canonical(a, p)
        )
        best_trial: Trial = best_for_algo["trial"]
        best_trial.chosen = True
        chosen[algo] = canonical(algo, params) if space else {}
        chosen_metrics[algo] = best_trial.metrics
        best_lists[algo] = best_for_algo["lists"]
        log.info("tune: %s chose %s (validation ndcg@%d=%.4f)", algo, _key(chosen[algo]), k, value)
    if C.ALGO_HYBRID in ordered:
        chosen[C.ALGO_HYBRID], chosen_metrics[C.ALGO_HYBRID] = _tune_blend(
            conf, tc, best_lists, validation, k, protocol, tracker, trials
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
    conf: Mapping[str, Any],
    tc: Mapping[str, Any],
    lists: Mapping[str, pd.DataFrame],
    validation: Validation,
    k: int,
    protocol: str,
    tracker: Tracker,
    trials: list[Trial],
) -> tuple[dict[str, Any], dict[str, float]]:
    """The hybrid's blend chosen over the chosen lists of the other algorithms (see :func:`blend_search`)."""
    from vidrec.hybrid import hybrid_conf

    if not lists:
        raise ValueError("tune: the hybrid needs at least one other algorithm to blend")
    hc = hybrid_conf(conf)
    space = (tc["spaces"] or {}).get(C.ALGO_HYBRID) or {}
    norms = [str(v) for v in space.get("score_norm", [hc["score_norm"]])]
    rrf_ks = [int(v) for v in space.get("rrf_k", [hc["rrf_k"]])]
    blend = LocalBlend(lists, validation.relevant_local, k)
    start = time.perf_counter()
    tried: list[tuple[dict[str, Any], dict[str, float]]] = []
    with tracker.run(f"{protocol}/hybrid", {"algorithm": C.ALGO_HYBRID, "protocol": protocol}) as rid:

        def on_trial(params: dict[str, Any], values: dict[str, float]) -> None:
            tried.append((params, values))
            tracker.log_metrics({"blend_ndcg": values["ndcg"]}, step=len(tried))

        params, value = blend_search(
            blend,
            hc["weights"],
            hc["score_norm"],
            int(hc["rrf_k"]),
            norms,
            rrf_ks,
            tc["blend_grid"],
            int(tc["blend_rounds"]),
            on_trial,
        )
        seconds = time.perf_counter() - start
        best_values = blend.metrics(params["weights"], params["score_norm"], params["rrf_k"])
        tracker.log_params(params)
        tracker.log_metrics({**best_values, "blends_tried": len(tried), "seconds": seconds})
    per_trial = seconds / max(1, len(tried))
    chosen_key = _key(params)
    for number, (p, values) in enumerate(tried, start=1):
        trials.append(
            Trial(
                C.ALGO_HYBRID, number, p, values, per_trial, chosen=_key(p) == chosen_key, mlflow_run_id=rid
            )
        )
    flagged = [t for t in trials if t.algorithm == C.ALGO_HYBRID and t.chosen]
    for extra in flagged[1:]:  # the same blend may have been scored in two searches: flag it once
        extra.chosen = False
    # every algorithm of base.yaml's weights gets a value: the blended ones their chosen weight, others 0
    weights = {a: 0.0 for a in hc["weights"]}
    weights.update({a: float(w) for a, w in params["weights"].items()})
    log.info(
        "tune: hybrid chose %s over %d blends (validation ndcg@%d=%.4f)", chosen_key, len(tried), k, value
    )
    return (
        {"score_norm": params["score_norm"], "rrf_k": int(params["rrf_k"]), "weights": weights},
        best_values,
    )


# --- outputs ------------------------------------------------------------------------------------


def trial_rows(result: TuneResult, run_date: dt.date) -> list[tuple[Any, ...]]:
    """``ops/tuning_trials`` rows (:data:`TRIALS_SCHEMA`) of ``result``."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return [
        (
            run_date,
            result.run_id,
            result.protocol,
            t.algorithm,
            t.number,
            _key(t.params),
            result.metric,
            float(t.metrics.get(result.metric.split("@")[0], 0.0)),
            bool(t.chosen),
            float(t.seconds),
            json.dumps({m: v for m, v in t.metrics.items() if math.isfinite(v)}, sort_keys=True),
            t.mlflow_run_id,
            now,
        )
        for t in result.trials
    ]


def write_trials(spark: SparkSession, warehouse: str, result: TuneResult, run_date: dt.date) -> int:
    """Replace the (``run_date``, protocol) rows of ``ops/tuning_trials`` with ``result``'s; returns rows."""
    rows = trial_rows(result, run_date)
    df = spark.createDataFrame(rows, TRIALS_SCHEMA)
    tables.replace_partition(
        df, warehouse, TRIALS_TABLE, run_date, extra_predicate=f"protocol = '{result.protocol}'"
    )
    return len(rows)


def env_file_path(path: str | Path | None) -> Path:
    """The environment file :func:`vidrec.config.load_config` would read for ``path``."""
    from vidrec.config import CONF_DIR, DEFAULT_ENV_FILE

    env = Path(path) if path is not None else CONF_DIR / DEFAULT_ENV_FILE
    if not env.is_file() and not env.is_absolute() and (CONF_DIR / env).is_file():
        env = CONF_DIR / env
    return env


def deep_merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``layer``, mappings merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_tuned_conf(
    path: str | Path, env_file: str | Path | None, result: TuneResult, run_date: dt.date
) -> Path:
    """Write the environment file ``env_file`` plus the chosen values to ``path`` and check it loads.

    The file is a complete environment layer (use it as ``--conf``); a header says when and how the
    values were chosen and the validation NDCG of each algorithm.

    Raises
    ------
    vidrec.config.ConfigError
        When the written file does not load (the file is removed again).
    """
    from vidrec.config import load_config

    env = env_file_path(env_file)
    base = yaml.safe_load(env.read_text(encoding="utf-8")) or {}
    merged = deep_merge(base, result.layer)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        f"# Tuned by jobs/tune.py (run {result.run_id}, run date {run_date.isoformat()}) over {env.name}.",
        f"# Protocol '{result.protocol}'; chosen by {result.metric} on a validation split carved from its",
        f"# training side ({result.validation}); the test side was not read.",
        "# Validation " + result.metric + ": "
        + ", ".join(f"{a} {m.get('ndcg', 0.0):.4f}" for a, m in result.chosen_metrics.items()) + ".",
        "# Regenerate with `make tune-ml100k`; every trial is in ops/tuning_trials and in MLflow.",
    ]  # fmt: skip
    body = yaml.safe_dump(merged, sort_keys=False, default_flow_style=None, width=110)
    out.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    try:
        load_config(out)
    except Exception:
        out.unlink()
        raise
    return out


def run(
    spark: SparkSession,
    conf: Mapping[str, Any],
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
    from vidrec import matrix

    protocol = protocol or conf["evaluation"]["protocol"]
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    tc = tune_conf(conf)
    algos = list(algorithms or tc["algorithms"] or conf["models"])
    wh = conf["warehouse"]
    users = tables.read(spark, wh, C.T_USERS) if tables.exists(spark, wh, C.T_USERS) else None
    user_index = tables.read(spark, wh, C.T_USER_INDEX)
    if users is None:
        users = user_index.select(C.COL_USER)
    work_dir = f"{wh}/{C.MODELS}/{run_date.isoformat()}/tune/{protocol}"
    start = time.perf_counter()
    validation = validation_context(
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
    tracker = Tracker(conf)
    with tracker.run(f"tune-{protocol}-{run_date.isoformat()}", {"protocol": protocol}) as parent:
        tracker.log_params(
            {
                "protocol": protocol,
                "run_date": run_date.isoformat(),
                "algorithms": ",".join(algos),
                "validation": validation.description,
                "validation_fraction": tc["validation_fraction"],
                "seed": tc["seed"],
                "rounds": tc["rounds"],
            }
        )
        try:
            result = tune(spark, conf, validation, algos, protocol, tracker)
        finally:
            validation.release()
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


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``vidrec tune`` / ``jobs/tune.py``: tune on a warehouse that ``ingest`` and ``matrix`` filled.

    Exit code 0 on success, 2 on a configuration error, 1 when tuning fails.
    """
    import argparse
    import sys

    from vidrec.cli import add_common, setup_logging
    from vidrec.config import ConfigError, load_config

    parser = argparse.ArgumentParser(
        prog="vidrec tune",
        description="Choose hyper-parameters on a validation split of the training side of a protocol.",
    )
    add_common(parser)
    parser.add_argument("--protocol", choices=PROTOCOLS, help="default: evaluation.protocol")
    parser.add_argument("--algorithms", help="comma-separated (default: tune.algorithms, else conf models)")
    parser.add_argument(
        "--out", help="write the tuned configuration layer here (e.g. conf/tuned/ml100k-random.yaml)"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    overrides = [*args.set, *([f"warehouse={args.warehouse}"] if args.warehouse else [])]
    try:
        conf = load_config(args.conf, overrides)
        tune_conf(conf)
    except (ConfigError, ValueError) as exc:
        print(f"vidrec tune: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(conf["logging"]["level"])
    from vidrec.session import build_spark

    spark = build_spark(conf)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()] if args.algorithms else None
    try:
        result = run(spark, conf, args.run_date, args.protocol, algorithms, args.out, args.conf)
    except Exception as exc:  # reported with its traceback; the exit code says it failed
        log.exception("vidrec tune failed: %s", exc)
        return 1
    k = result.metric
    print(f"tuning ({result.protocol}; validation: {result.validation}) - chosen by {k}:")
    for algo, params in result.chosen.items():
        value = result.chosen_metrics[algo].get("ndcg", float("nan"))
        print(f"  {algo:<10} {k}={value:.4f}  {_key(params)}")
    print(f"{len(result.trials)} trials in {tables.catalog_name(TRIALS_TABLE)}; conf: {result.conf_path}")
    return 0
