"""The hybrid list a product serves: cold-start routing, weighted blending, re-ranking, filters, reasons.

:func:`blend` turns the candidate lists of several generators into one list per target user
(``algorithm = 'hybrid'``):

1. **Normalise** each generator's scores per user (:func:`normalise_scores`): reciprocal-rank
   fusion ``(rrf_k + 1) / (rrf_k + rank)`` (default; 1 at rank 1, scale-free) or per-user min-max.
2. **Route by history** (:func:`user_tiers`): the user's positive training interactions
   (``silver/interactions`` rows with ``confidence > 0``) put them in a tier —
   ``new`` (0): their segment's popular list (:func:`segment_popularity`: country, else age band,
   else overall, whichever first has ``min_segment_users`` engaged users);
   ``cold`` (1..``cold_start_max_events``): ``cold_weights`` (content and item-kNN neighbours of
   their few items blended with the segment's popular list);
   ``warm``: ``weights`` over every generator. The segment list also fills every tier's list at a
   weight of :data:`FILL_WEIGHT`, so a list is short only when the catalog runs out. A user with a
   taste profile also gets their ``new_item_slots`` best **new items** (at most
   ``new_item_max_users`` users engaged with them in training) by content cosine
   (:func:`new_item_list`), weighted by ``weights["new_items"]`` / ``cold_weights["new_items"]``:
   this is how a title nobody has watched yet enters the served lists.
3. **Blend**: ``score(u, i) = sum_g weight(tier(u), g) * norm_g(u, i)``; seen pairs excluded.
4. **Filter**: items whose ``maturity_rating`` is in ``restricted_ratings`` are never shown to a
   user whose ``age_band`` is in ``restricted_age_bands`` (an unknown age band is not restricted).
5. **Re-rank** (:func:`rerank`), when ``mmr_lambda < 1`` or ``max_per_genre > 0``: greedy maximal
   marginal relevance over the top ``rerank_pool * n`` items, ``lambda * rel(i) - (1 - lambda) *
   max_{j chosen} jaccard(genres_i, genres_j)`` with ``rel = score / max score``, skipping items
   that would put a genre over ``max_per_genre``. The greedy values never increase, so they are
   the scores of the re-ranked list.
6. **Explain** (:func:`explain`): one ``reason`` per row, returned as
   ``Candidates.artifacts["reasons"]`` ``(user_idx, item_idx, reason)``.

:func:`choose_weights` picks the warm ``weights`` on a validation split carved from the training
events (the last ``validation_fraction`` of their time; the test split is never looked at) by
NDCG@k over a small grid, by coordinate ascent. :func:`cold_slices` gives the relevant pairs of
the cold-user and cold-item evaluation slices.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from vidrec import generators, metrics
from vidrec.als import model_version
from vidrec.constants import (
    ALGO_CONTENT,
    ALGO_HYBRID,
    ALGO_ITEMKNN,
    ALGO_POPULARITY,
    COL_AGE_BAND,
    COL_CONFIDENCE,
    COL_COUNTRY,
    COL_EVENT_TYPE,
    COL_GENRES,
    COL_ITEM,
    COL_ITEM_IDX,
    COL_LAST_TS,
    COL_MATURITY,
    COL_RANK,
    COL_REASON,
    COL_RELEASE_YEAR,
    COL_SCORE,
    COL_TITLE,
    COL_TS,
    COL_USER,
    COL_USER_IDX,
)
from vidrec.content import COL_NEIGHBOUR_IDX, content_conf, item_vectors
from vidrec.generators import Candidates, FitContext, register
from vidrec.itemknn import rank_per_user
from vidrec.popularity import ENGAGED_TYPES
from vidrec.topn import RECS_SCHEMA, top_n_from_factors

log = logging.getLogger(__name__)

#: Conf section of this module.
CONF_SECTION = "hybrid"
#: Defaults of ``hybrid.*``. In ``cold_weights``, ``popularity`` means the segment's popular list.
DEFAULTS: dict[str, Any] = {
    "weights": {ALGO_POPULARITY: 0.25, "als": 1.0, ALGO_ITEMKNN: 1.0, ALGO_CONTENT: 0.5, "new_items": 0.0},
    "cold_weights": {ALGO_POPULARITY: 0.5, ALGO_ITEMKNN: 1.0, ALGO_CONTENT: 1.0, "new_items": 0.0},
    "cold_start_max_events": 3,
    "score_norm": "rrf",
    "rrf_k": 60,
    "pool_n": 50,
    "mmr_lambda": 1.0,
    "rerank_pool": 3,
    "max_per_genre": 0,
    "min_segment_users": 20,
    "restricted_age_bands": ["<13", "13-17", "<18"],
    "restricted_ratings": ["R", "NC-17", "TV-MA"],
    "new_release_years": 0,
    "reason_history": 20,
    "tune_weights": False,
    "weight_grid": [0.0, 0.25, 0.5, 1.0],
    "validation_fraction": 0.1,
    "tune_rounds": 2,
    "new_item_max_users": 2,
    "new_item_slots": 1,
}
SCORE_NORMS = ("rrf", "minmax")

TIER_NEW, TIER_COLD, TIER_WARM = "new", "cold", "warm"
#: Internal component name of the segment popular list (``popularity`` in ``cold_weights``).
SEGMENT = "segment_popularity"
#: Component name of each user's best-matching new items (``new_items`` in ``weights``).
NEW_ITEMS = "new_items"
#: Content neighbours per item searched for a "because you watched" anchor.
REASON_NEIGHBOURS = 50
#: Weight of the segment popular list in every tier (fills lists, breaks exact ties).
FILL_WEIGHT = 1e-3
#: Segment levels, most specific first; ``overall`` always applies.
SEGMENT_LEVELS: tuple[str, ...] = (COL_COUNTRY, COL_AGE_BAND)
OVERALL = "overall"
#: Least content cosine between a watched item and a recommended one for "because you watched".
REASON_MIN_SIMILARITY = 0.2
#: Popularity window (days back from the latest training event) when ``popularity`` conf is absent.
DEFAULT_WINDOW_DAYS = 28

COL_TIER = "tier"
COL_N_POSITIVE = "n_positive"
_ALGO, _NORM, _WEIGHT, _TOP = "_algo", "_norm", "_weight", "_top"
_LEVEL, _VALUE, _SHARE = "_level", "_value", "_share"


# --- configuration ------------------------------------------------------------------------------


def hybrid_conf(conf: Mapping[str, Any]) -> dict[str, Any]:
    """The ``hybrid`` section of ``conf`` over :data:`DEFAULTS` (weights merged key by key, as floats).

    Raises
    ------
    ValueError
        On an unknown ``score_norm``, ``mmr_lambda`` outside [0, 1], a negative weight or count.
    """
    section = dict(conf.get(CONF_SECTION) or {})
    out = {**DEFAULTS, **section}
    for key in ("weights", "cold_weights"):
        merged = {**DEFAULTS[key], **(section.get(key) or {})}
        out[key] = {str(k): float(v) for k, v in merged.items()}
        negative = {k: v for k, v in out[key].items() if v < 0}
        if negative:
            raise ValueError(f"hybrid.{key} must be >= 0, got {negative}")
    if out["score_norm"] not in SCORE_NORMS:
        raise ValueError(f"hybrid.score_norm must be one of {SCORE_NORMS}, got {out['score_norm']!r}")
    if not 0.0 <= float(out["mmr_lambda"]) <= 1.0:
        raise ValueError(f"hybrid.mmr_lambda must be in [0, 1], got {out['mmr_lambda']}")
    for key in ("cold_start_max_events", "max_per_genre", "min_segment_users", "new_release_years", "rrf_k"):
        if int(out[key]) < 0:
            raise ValueError(f"hybrid.{key} must be >= 0, got {out[key]}")
    if int(out["new_item_max_users"]) < 0:
        raise ValueError(f"hybrid.new_item_max_users must be >= 0, got {out['new_item_max_users']}")
    for key in ("pool_n", "rerank_pool", "reason_history", "new_item_slots"):
        if int(out[key]) < 1:
            raise ValueError(f"hybrid.{key} must be >= 1, got {out[key]}")
    if not 0.0 < float(out["validation_fraction"]) < 1.0:
        raise ValueError(f"hybrid.validation_fraction must be in (0, 1), got {out['validation_fraction']}")
    return out


def component_names(hc: Mapping[str, Any]) -> list[str]:
    """Generators the hybrid needs: those with a positive warm or cold weight (sorted; ``new_items``
    is not a generator but a list the hybrid builds itself)."""
    names = {a for a, w in hc["weights"].items() if w > 0} | {
        a for a, w in hc["cold_weights"].items() if w > 0
    }
    return sorted(names - {ALGO_HYBRID, NEW_ITEMS})


# --- routing and segment popularity -------------------------------------------------------------


def user_tiers(interactions: DataFrame, targets: DataFrame, cold_start_max_events: int) -> DataFrame:
    """``(user_idx, n_positive, tier)`` for every target user.

    ``n_positive`` counts the user's interactions with ``confidence > 0`` (impressions and dislikes
    alone count 0); ``tier`` is ``new`` (0), ``cold`` (1..``cold_start_max_events``) or ``warm``.
    """
    counts = (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .groupBy(COL_USER_IDX)
        .agg(F.countDistinct(COL_ITEM_IDX).alias(COL_N_POSITIVE))
    )
    n = F.coalesce(F.col(COL_N_POSITIVE), F.lit(0)).cast("int")
    tier = (
        F.when(n == 0, TIER_NEW).when(n <= F.lit(int(cold_start_max_events)), TIER_COLD).otherwise(TIER_WARM)
    )
    return (
        targets.select(COL_USER_IDX)
        .distinct()
        .join(counts, COL_USER_IDX, "left")
        .select(COL_USER_IDX, n.alias(COL_N_POSITIVE), tier.alias(COL_TIER))
    )


def segment_popularity(
    events: DataFrame,
    users: DataFrame,
    targets: DataFrame,
    seen: DataFrame,
    n: int,
    min_segment_users: int = 20,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> DataFrame:
    """Each target user's segment popular list: candidates ``(user_idx, item_idx, score, rank)``.

    Popularity of item ``i`` in segment ``s`` = share of the segment's engaged users (a play,
    complete, like, favorite, share or rating in the last ``window_days`` of ``events``) who engaged
    with ``i``. A user's segment is their country if it has at least ``min_segment_users`` engaged
    users, else their age band under the same rule, else ``overall``;
    ``score = share in segment + FILL_WEIGHT * overall share``, so the list is completed by the
    overall ranking. Seen pairs are excluded.

    Parameters
    ----------
    events : DataFrame
        ``(user_idx, item_idx, event_type, ts)``.
    users : DataFrame
        ``user_idx`` with ``country`` and ``age_band`` when known (either column may be absent).
    targets, seen : DataFrame
        ``user_idx`` to serve; ``(user_idx, item_idx)`` to exclude.
    n, min_segment_users, window_days : int
    """
    levels = [c for c in SEGMENT_LEVELS if c in users.columns]
    profile = (
        users.select(COL_USER_IDX, *levels)
        .where(F.col(COL_USER_IDX).isNotNull())
        .dropDuplicates([COL_USER_IDX])
    )
    ev = events.where(F.col(COL_EVENT_TYPE).isin(*ENGAGED_TYPES)).select(COL_USER_IDX, COL_ITEM_IDX, COL_TS)
    end = ev.agg(F.max(COL_TS).alias("_end"))
    ev = (
        ev.crossJoin(F.broadcast(end))
        .where(F.col(COL_TS) > F.col("_end") - F.make_interval(days=F.lit(int(window_days))))
        .select(COL_USER_IDX, COL_ITEM_IDX)
        .distinct()
        .join(profile, COL_USER_IDX, "left")
    )
    long = ev.select(COL_USER_IDX, COL_ITEM_IDX, F.lit(OVERALL).alias(_LEVEL), F.lit("*").alias(_VALUE))
    for level in levels:
        long = long.unionByName(
            ev.where(F.col(level).isNotNull()).select(
                COL_USER_IDX,
                COL_ITEM_IDX,
                F.lit(level).alias(_LEVEL),
                F.col(level).cast("string").alias(_VALUE),
            )
        )
    sizes = long.groupBy(_LEVEL, _VALUE).agg(F.countDistinct(COL_USER_IDX).alias("_size"))
    pool = 2 * n + 10
    by_share = Window.partitionBy(_LEVEL, _VALUE).orderBy(F.col(_SHARE).desc(), F.col(COL_ITEM_IDX))
    shares = (
        long.groupBy(_LEVEL, _VALUE, COL_ITEM_IDX)
        .agg(F.count(F.lit(1)).alias("_cnt"))
        .join(sizes, [_LEVEL, _VALUE])
        .withColumn(_SHARE, F.col("_cnt") / F.col("_size"))
        .withColumn("_pos", F.row_number().over(by_share))
        .where(F.col("_pos") <= pool)
        .select(_LEVEL, _VALUE, COL_ITEM_IDX, _SHARE, "_size")
    )
    chosen = targets.select(COL_USER_IDX).distinct().join(profile, COL_USER_IDX, "left")
    level_col: Column = F.lit(OVERALL)
    value_col: Column = F.lit("*")
    for level in reversed(levels):
        size = F.col(f"_size_{level}")
        seg_sizes = sizes.where(F.col(_LEVEL) == level).select(
            F.col(_VALUE).alias(f"_v_{level}"), F.col("_size").alias(f"_size_{level}")
        )
        chosen = chosen.join(seg_sizes, F.col(level).cast("string") == F.col(f"_v_{level}"), "left")
        ok = F.coalesce(size, F.lit(0)) >= F.lit(int(min_segment_users))
        level_col = F.when(ok, F.lit(level)).otherwise(level_col)
        value_col = F.when(ok, F.col(level).cast("string")).otherwise(value_col)
    chosen = chosen.select(COL_USER_IDX, level_col.alias(_LEVEL), value_col.alias(_VALUE))
    in_segment = chosen.join(shares.drop("_size"), [_LEVEL, _VALUE]).select(
        COL_USER_IDX, COL_ITEM_IDX, _SHARE
    )
    overall = shares.where(F.col(_LEVEL) == OVERALL).select(
        COL_ITEM_IDX, (F.col(_SHARE) * F.lit(FILL_WEIGHT)).alias(_SHARE)
    )
    fill = chosen.select(COL_USER_IDX).crossJoin(overall)
    scores = (
        in_segment.unionByName(fill)
        .groupBy(COL_USER_IDX, COL_ITEM_IDX)
        .agg(F.sum(_SHARE).alias(COL_SCORE))
        .join(seen.select(COL_USER_IDX, COL_ITEM_IDX), [COL_USER_IDX, COL_ITEM_IDX], "left_anti")
    )
    return rank_per_user(scores, n)


# --- blending -----------------------------------------------------------------------------------


def normalise_scores(recs: DataFrame, method: str = "rrf", rrf_k: int = 60) -> DataFrame:
    """``(user_idx, item_idx, _norm)``: a generator's scores made comparable across generators.

    ``rrf``: ``(rrf_k + 1) / (rrf_k + rank)`` (1 at rank 1); ``minmax``: ``(s - min) / (max - min)``
    per user (1 where all scores are equal).
    """
    if method == "rrf":
        norm = F.lit(float(rrf_k + 1)) / (F.lit(float(rrf_k)) + F.col(COL_RANK))
        return recs.select(COL_USER_IDX, COL_ITEM_IDX, norm.alias(_NORM))
    if method == "minmax":
        w = Window.partitionBy(COL_USER_IDX)
        lo, hi = F.min(COL_SCORE).over(w), F.max(COL_SCORE).over(w)
        norm = F.when(hi > lo, (F.col(COL_SCORE) - lo) / (hi - lo)).otherwise(F.lit(1.0))
        return recs.select(COL_USER_IDX, COL_ITEM_IDX, norm.alias(_NORM))
    raise ValueError(f"score normalisation must be one of {SCORE_NORMS}, got {method!r}")


def weight_table(
    spark: SparkSession, weights: Mapping[str, float], cold_weights: Mapping[str, float]
) -> DataFrame:
    """``(tier, _algo, _weight)``: the weight of each component in each tier (zero weights left out).

    ``popularity`` in ``cold_weights`` is the segment list; the ``new`` tier is the segment list alone.
    """
    rows: list[tuple[str, str, float]] = [(TIER_NEW, SEGMENT, 1.0)]
    for algo, w in weights.items():
        if w > 0 and algo != SEGMENT:
            rows.append((TIER_WARM, algo, float(w)))
    rows.append((TIER_WARM, SEGMENT, FILL_WEIGHT))
    cold_segment = FILL_WEIGHT
    for algo, w in cold_weights.items():
        if algo in (ALGO_POPULARITY, SEGMENT):
            cold_segment = max(float(w), FILL_WEIGHT)
        elif w > 0:
            rows.append((TIER_COLD, algo, float(w)))
    rows.append((TIER_COLD, SEGMENT, cold_segment))
    return spark.createDataFrame(rows, f"{COL_TIER} string, {_ALGO} string, {_WEIGHT} double")


def contributions(
    candidates: Mapping[str, DataFrame], tiers: DataFrame, method: str = "rrf", rrf_k: int = 60
) -> DataFrame:
    """``(user_idx, item_idx, _algo, _norm, tier)``: every normalised candidate with its user's tier.

    Parameters
    ----------
    candidates : mapping
        Component name -> candidate recs ``(user_idx, item_idx, score, rank)``.
    tiers : DataFrame
        From :func:`user_tiers`; users outside it are dropped.
    """
    frames = [
        normalise_scores(recs, method, rrf_k).withColumn(_ALGO, F.lit(name))
        for name, recs in candidates.items()
    ]
    if not frames:
        raise ValueError("hybrid: no candidate lists to blend")
    union = frames[0]
    for f in frames[1:]:
        union = union.unionByName(f)
    return union.join(tiers.select(COL_USER_IDX, COL_TIER), COL_USER_IDX)


def blend_scores(contribs: DataFrame, weights: DataFrame) -> DataFrame:
    """``(user_idx, item_idx, score, _top)``: weighted sums of normalised scores per (user, item).

    ``_top`` names the component that contributed most (for the explanation).
    """
    part = contribs.join(F.broadcast(weights), [COL_TIER, _ALGO]).withColumn(
        "_c", F.col(_WEIGHT) * F.col(_NORM)
    )
    return part.groupBy(COL_USER_IDX, COL_ITEM_IDX).agg(
        F.sum("_c").alias(COL_SCORE), F.max_by(_ALGO, F.struct(F.col("_c"), F.col(_ALGO))).alias(_TOP)
    )


def maturity_filter(
    pairs: DataFrame,
    users: DataFrame,
    items: DataFrame,
    restricted_age_bands: Iterable[str],
    restricted_ratings: Iterable[str],
) -> DataFrame:
    """``pairs`` without the (user, item) rows an age band may not see.

    A row goes when the user's ``age_band`` is in ``restricted_age_bands`` and the item's
    ``maturity_rating`` in ``restricted_ratings``; users or items without those columns or values
    are not restricted. Returns ``pairs``' columns.
    """
    bands, ratings = sorted(set(restricted_age_bands)), sorted(set(restricted_ratings))
    if not bands or not ratings or COL_AGE_BAND not in users.columns or COL_MATURITY not in items.columns:
        return pairs
    minors = users.where(F.col(COL_AGE_BAND).isin(*bands)).select(COL_USER_IDX).distinct()
    adult = items.where(F.col(COL_MATURITY).isin(*ratings)).select(COL_ITEM_IDX).distinct()
    marked = pairs.join(minors.withColumn("_minor", F.lit(True)), COL_USER_IDX, "left").join(
        adult.withColumn("_adult", F.lit(True)), COL_ITEM_IDX, "left"
    )
    keep = ~(F.coalesce(F.col("_minor"), F.lit(False)) & F.coalesce(F.col("_adult"), F.lit(False)))
    return marked.where(keep).select(*pairs.columns)


# --- re-ranking ---------------------------------------------------------------------------------


def rerank(
    items: Sequence[int],
    scores: Sequence[float],
    genres: Sequence[Iterable[str] | None],
    n: int,
    mmr_lambda: float = 1.0,
    max_per_genre: int = 0,
) -> list[tuple[int, float]]:
    """Greedy MMR over genres with an optional per-genre cap: the best ``n`` of one user's pool.

    Parameters
    ----------
    items, scores, genres : sequences of equal length
        The pool (any order); ``genres`` entries may be None or empty (such an item is similar to
        nothing and counts against no cap).
    n : int
    mmr_lambda : float
        1 keeps the score order; lower values trade relevance for genre diversity.
    max_per_genre : int
        At most this many items of any one genre (0: no cap). Items over the cap are skipped, so
        the list may be shorter than ``n``.

    Returns
    -------
    list of (item, value)
        In rank order; ``value`` is the original score when ``mmr_lambda == 1`` and the MMR value
        ``lambda * score / max score - (1 - lambda) * max similarity to the items above``
        otherwise; values never increase down the list.

    Examples
    --------
    >>> rerank([1, 2, 3], [1.0, 0.9, 0.5], [["a"], ["a"], ["b"]], 2, mmr_lambda=0.5)
    [(1, 0.5), (3, 0.25)]
    """
    if not len(items) == len(scores) == len(genres):
        raise ValueError("items, scores and genres must have equal lengths")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    order = sorted(range(len(items)), key=lambda k: (-float(scores[k]), int(items[k])))
    ids = [int(items[k]) for k in order]
    s = np.array([float(scores[k]) for k in order], dtype=np.float64)
    sets = [frozenset(genres[k]) if genres[k] is not None else frozenset() for k in order]
    m = len(ids)
    if m == 0:
        return []
    diversify = mmr_lambda < 1.0
    top = float(np.max(np.abs(s))) or 1.0
    rel = s / top
    max_sim = np.zeros(m)
    available = np.ones(m, dtype=bool)
    counts: dict[str, int] = {}
    out: list[tuple[int, float]] = []
    while len(out) < n:
        eligible = available.copy()
        if max_per_genre > 0:
            for k in np.flatnonzero(eligible):
                if any(counts.get(g, 0) >= max_per_genre for g in sets[k]):
                    eligible[k] = False
        if not eligible.any():
            break
        value = mmr_lambda * rel - (1.0 - mmr_lambda) * max_sim if diversify else s
        j = int(np.argmax(np.where(eligible, value, -np.inf)))  # first maximum: higher score, lower id
        out.append((ids[j], float(value[j])))
        available[j] = False
        for g in sets[j]:
            counts[g] = counts.get(g, 0) + 1
        if diversify and sets[j]:
            for k in np.flatnonzero(available):
                if sets[k]:
                    sim = len(sets[j] & sets[k]) / len(sets[j] | sets[k])
                    max_sim[k] = max(max_sim[k], sim)
    return out


def rerank_lists(
    scored: DataFrame, items: DataFrame, n: int, mmr_lambda: float, max_per_genre: int, pool: int
) -> DataFrame:
    """Candidates from ``(user_idx, item_idx, score)``: :func:`rerank` of each user's top ``pool``.

    ``items`` gives ``(item_idx, genres)``; one pandas group per user (``applyInPandas``).
    """
    by_score = Window.partitionBy(COL_USER_IDX).orderBy(F.col(COL_SCORE).desc(), F.col(COL_ITEM_IDX))
    genres = (
        items.select(COL_ITEM_IDX, COL_GENRES)
        if COL_GENRES in items.columns
        else items.select(COL_ITEM_IDX, F.lit(None).cast("array<string>").alias(COL_GENRES))
    ).dropDuplicates([COL_ITEM_IDX])
    top = (
        scored.withColumn("_pos", F.row_number().over(by_score))
        .where(F.col("_pos") <= pool)
        .join(genres, COL_ITEM_IDX, "left")
        .select(COL_USER_IDX, COL_ITEM_IDX, COL_SCORE, COL_GENRES)
    )
    lam, cap = float(mmr_lambda), int(max_per_genre)

    def per_user(pdf: pd.DataFrame) -> pd.DataFrame:
        chosen = rerank(
            pdf[COL_ITEM_IDX].tolist(), pdf[COL_SCORE].tolist(), pdf[COL_GENRES].tolist(), n, lam, cap
        )
        return pd.DataFrame(
            {
                COL_USER_IDX: np.full(len(chosen), int(pdf[COL_USER_IDX].iloc[0]), dtype=np.int32),
                COL_ITEM_IDX: np.array([i for i, _ in chosen], dtype=np.int32),
                COL_SCORE: np.array([v for _, v in chosen], dtype=np.float64),
                COL_RANK: np.arange(1, len(chosen) + 1, dtype=np.int32),
            }
        )

    return top.groupBy(COL_USER_IDX).applyInPandas(per_user, RECS_SCHEMA)


# --- explanations -------------------------------------------------------------------------------


def _item_info(items: DataFrame, run_year: int, new_release_years: int) -> DataFrame:
    cols = set(items.columns)
    title = F.coalesce(
        *([F.col(COL_TITLE)] if COL_TITLE in cols else []),
        *([F.col(COL_ITEM)] if COL_ITEM in cols else []),
        F.col(COL_ITEM_IDX).cast("string"),
    )
    genres = F.col(COL_GENRES) if COL_GENRES in cols else F.lit(None).cast("array<string>")
    first = F.when(F.size(genres) > 0, F.element_at(genres, 1))
    is_new = (
        F.coalesce(F.col(COL_RELEASE_YEAR) >= F.lit(run_year - int(new_release_years)), F.lit(False))
        if COL_RELEASE_YEAR in cols
        else F.lit(False)
    )
    return items.select(
        COL_ITEM_IDX,
        title.alias("_title"),
        F.coalesce(genres, F.array().cast("array<string>")).alias("_genres"),
        first.alias("_genre"),
        is_new.alias("_is_new"),
    ).dropDuplicates([COL_ITEM_IDX])


def user_top_genre(interactions: DataFrame, items: DataFrame) -> DataFrame:
    """``(user_idx, _top_genre)``: the genre of the user's positive items with the largest total
    confidence (ties: alphabetical). Users whose items have no genre are left out."""
    if COL_GENRES not in items.columns:
        return interactions.sparkSession.createDataFrame([], f"{COL_USER_IDX} int, _top_genre string")
    genres = items.select(COL_ITEM_IDX, F.explode(COL_GENRES).alias("_g")).where(F.col("_g").isNotNull())
    sums = (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .join(genres, COL_ITEM_IDX)
        .groupBy(COL_USER_IDX, "_g")
        .agg(F.sum(COL_CONFIDENCE).alias("_s"))
    )
    w = Window.partitionBy(COL_USER_IDX).orderBy(F.col("_s").desc(), F.col("_g"))
    return (
        sums.withColumn("_pos", F.row_number().over(w))
        .where(F.col("_pos") == 1)
        .select(COL_USER_IDX, F.col("_g").alias("_top_genre"))
    )


def anchors(
    recs: DataFrame,
    interactions: DataFrame,
    neighbours: DataFrame | None,
    content_neighbours: DataFrame | None,
    history: int = 20,
) -> DataFrame:
    """``(user_idx, item_idx, _anchor)``: for each recommended pair, the user's watched item most
    similar to it — a co-watch neighbour first (highest similarity), else a content neighbour with a
    cosine of at least :data:`REASON_MIN_SIMILARITY`. Only the user's ``history`` most recent
    positive items are considered; pairs with no such item are left out.

    Parameters
    ----------
    neighbours, content_neighbours : DataFrame, optional
        ``(item_idx, neighbour_idx, score)``: co-watch and content neighbour lists (either
        direction of a pair counts). Joining lists keeps this cheap at any catalog size: no vector
        arithmetic per (recommendation, history item) pair.
    """
    spark = recs.sparkSession
    empty = spark.createDataFrame([], f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, _anchor int")
    if neighbours is None and content_neighbours is None:
        return empty
    recent = Window.partitionBy(COL_USER_IDX).orderBy(
        F.col(COL_LAST_TS).desc_nulls_last(), F.col(COL_CONFIDENCE).desc(), F.col(COL_ITEM_IDX)
    )
    hist = (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .join(recs.select(COL_USER_IDX).distinct(), COL_USER_IDX, "left_semi")
        .withColumn("_pos", F.row_number().over(recent))
        .where(F.col("_pos") <= history)
        .select(COL_USER_IDX, F.col(COL_ITEM_IDX).alias("_h"))
    )
    pairs = (
        recs.select(COL_USER_IDX, COL_ITEM_IDX)
        .join(hist, COL_USER_IDX)
        .where(F.col("_h") != F.col(COL_ITEM_IDX))
    )

    def symmetric(nb: DataFrame | None, name: str) -> DataFrame | None:
        if nb is None:
            return None
        one = nb.select(
            F.col(COL_ITEM_IDX).alias("_h"), F.col(COL_NEIGHBOUR_IDX).alias(COL_ITEM_IDX), COL_SCORE
        )
        both = one.unionByName(
            one.select(F.col(COL_ITEM_IDX).alias("_h"), F.col("_h").alias(COL_ITEM_IDX), COL_SCORE)
        )
        return both.groupBy("_h", COL_ITEM_IDX).agg(F.max(COL_SCORE).alias(name))

    for nb, name in ((neighbours, "_knn"), (content_neighbours, "_cos")):
        table = symmetric(nb, name)
        if table is None:
            pairs = pairs.withColumn(name, F.lit(None).cast("double"))
        else:
            pairs = pairs.join(table, ["_h", COL_ITEM_IDX], "left")
    pairs = pairs.where(F.col("_knn").isNotNull() | (F.col("_cos") >= F.lit(REASON_MIN_SIMILARITY)))
    best = Window.partitionBy(COL_USER_IDX, COL_ITEM_IDX).orderBy(
        F.col("_knn").desc_nulls_last(), F.col("_cos").desc_nulls_last(), F.col("_h")
    )
    return (
        pairs.withColumn("_pos", F.row_number().over(best))
        .where(F.col("_pos") == 1)
        .select(COL_USER_IDX, COL_ITEM_IDX, F.col("_h").alias("_anchor"))
    )


def explain(
    recs: DataFrame,
    tops: DataFrame,
    tiers: DataFrame,
    interactions: DataFrame,
    items: DataFrame,
    run_date: str,
    neighbours: DataFrame | None = None,
    content_neighbours: DataFrame | None = None,
    new_release_years: int = 0,
    history: int = 20,
    new_items: DataFrame | None = None,
) -> DataFrame:
    """``(user_idx, item_idx, reason)``: one non-null reason per row of ``recs``.

    In order of precedence:

    - ``new`` tier: ``"popular in <genre>"`` (the item's first genre);
    - the item is new (released in the last ``new_release_years`` years of ``run_date``'s year, or
      one of ``new_items``) and has the user's top genre: ``"new in <genre> you like"``;
    - popularity contributed most to the blended score: ``"popular in <genre>"``;
    - a watched item is similar to it (:func:`anchors`): ``"because you watched <title>"``;
    - otherwise ``"popular in <genre>"``; ``"popular right now"`` for an item without genres.

    Parameters
    ----------
    recs : DataFrame
        Final candidates ``(user_idx, item_idx, ...)``.
    tops : DataFrame
        ``(user_idx, item_idx, _top)``: the main contributor of each pair (may lack pairs).
    tiers : DataFrame
        From :func:`user_tiers`.
    interactions, items : DataFrame
        Training interactions; the catalog with ``item_idx``.
    run_date : str
        ISO date (its year dates "new" releases).
    neighbours, content_neighbours : DataFrame, optional
        Co-watch and content neighbours ``(item_idx, neighbour_idx, score)`` for the "because you
        watched" anchor.
    new_items : DataFrame, optional
        ``item_idx`` of items too new to have an audience (see :func:`new_item_ids`).
    """
    info = _item_info(items, dt.date.fromisoformat(run_date).year, new_release_years)
    if new_items is not None:
        fresh = new_items.select(COL_ITEM_IDX).distinct().withColumn("_fresh", F.lit(True))
        info = info.join(fresh, COL_ITEM_IDX, "left").select(
            COL_ITEM_IDX,
            "_title",
            "_genres",
            "_genre",
            (F.col("_is_new") | F.coalesce(F.col("_fresh"), F.lit(False))).alias("_is_new"),
        )
    pairs = recs.select(COL_USER_IDX, COL_ITEM_IDX)
    anchor = anchors(pairs, interactions, neighbours, content_neighbours, history)
    titles = info.select(F.col(COL_ITEM_IDX).alias("_anchor"), F.col("_title").alias("_anchor_title"))
    joined = (
        pairs.join(info, COL_ITEM_IDX, "left")
        .join(tiers.select(COL_USER_IDX, COL_TIER), COL_USER_IDX, "left")
        .join(tops.select(COL_USER_IDX, COL_ITEM_IDX, _TOP), [COL_USER_IDX, COL_ITEM_IDX], "left")
        .join(user_top_genre(interactions, items), COL_USER_IDX, "left")
        .join(anchor, [COL_USER_IDX, COL_ITEM_IDX], "left")
        .join(titles, "_anchor", "left")
    )
    popular = F.when(F.col("_genre").isNotNull(), F.concat(F.lit("popular in "), F.col("_genre"))).otherwise(
        F.lit("popular right now")
    )
    likes_genre = F.coalesce(F.array_contains(F.col("_genres"), F.col("_top_genre")), F.lit(False))
    reason = (
        F.when(F.col(COL_TIER) == TIER_NEW, popular)
        .when(
            F.coalesce(F.col("_is_new"), F.lit(False)) & likes_genre,
            F.concat(F.lit("new in "), F.col("_top_genre"), F.lit(" you like")),
        )
        .when(
            (F.col(_TOP) == NEW_ITEMS) & F.col("_genre").isNotNull(),
            F.concat(F.lit("new in "), F.col("_genre")),
        )
        .when(F.col(_TOP).isin(ALGO_POPULARITY, SEGMENT), popular)
        .when(
            F.col("_anchor_title").isNotNull(),
            F.concat(F.lit("because you watched "), F.col("_anchor_title")),
        )
        .otherwise(popular)
    )
    return joined.select(COL_USER_IDX, COL_ITEM_IDX, reason.alias(COL_REASON))


# --- the hybrid ---------------------------------------------------------------------------------


def materialise(df: DataFrame) -> DataFrame:
    """``df`` computed now and cut from its lineage (``localCheckpoint``).

    The blend stacks joins over every generator's plan; without the cut, the plans of later steps
    (explanations, metrics) grow with every reference to earlier ones and their planning and
    string rendering can exhaust the driver. Local checkpoints live in the executors' block
    managers, like a cache: a lost executor fails the job rather than recomputing.
    """
    return df.localCheckpoint(eager=True)


def _window_days(ctx: FitContext) -> int:
    return int((ctx.conf.get("popularity") or {}).get("window_days", DEFAULT_WINDOW_DAYS))


def new_item_ids(interactions: DataFrame, items: DataFrame, max_users: int) -> DataFrame:
    """``item_idx`` of catalog items with at most ``max_users`` users of positive interaction.

    These are the titles too new to have an audience: collaborative generators cannot rank them,
    content similarity can (:func:`new_item_list`).
    """
    audience = (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .groupBy(COL_ITEM_IDX)
        .agg(F.countDistinct(COL_USER_IDX).alias("_aud"))
    )
    return (
        items.select(COL_ITEM_IDX)
        .distinct()
        .join(audience, COL_ITEM_IDX, "left")
        .where(F.coalesce(F.col("_aud"), F.lit(0)) <= F.lit(int(max_users)))
        .select(COL_ITEM_IDX)
    )


def new_item_list(ctx: FitContext, content: Candidates | None, new_items: DataFrame, slots: int) -> DataFrame:
    """Each target user's ``slots`` best new items by content cosine: ``(user_idx, item_idx, score, rank)``.

    Uses the content generator's ``item_vectors`` and ``user_profiles`` when it was fitted (else
    builds them). Users without a profile (no positive item) get no row.
    """
    from vidrec.content import user_profiles

    cc = content_conf(ctx.conf)
    vectors = content.artifacts.get("item_vectors") if content is not None else None
    profiles = content.artifacts.get("user_profiles") if content is not None else None
    if vectors is None:
        vectors = item_vectors(ctx.items, cc)
    if profiles is None:
        profiles = user_profiles(
            ctx.interactions, vectors, float(cc["half_life_days"]), users=ctx.target_users
        )
    fresh = vectors.join(new_items.select(COL_ITEM_IDX), COL_ITEM_IDX, "left_semi")
    targets = profiles.join(ctx.target_users.select(COL_USER_IDX).distinct(), COL_USER_IDX, "left_semi")
    block = int((ctx.conf.get("recommend") or {}).get("user_block_size", 2048))
    return top_n_from_factors(ctx.spark, targets, fresh, ctx.seen, int(slots), block_size=block)


def _prepared(
    ctx: FitContext,
    candidates: Mapping[str, Candidates],
    hc: Mapping[str, Any],
    n: int,
    new_items: DataFrame | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Tiers and contributions of ``ctx.target_users``, both materialised.

    The contributions hold every candidate list, the segment popular list and, when ``new_items``
    is given, each user's best new items (:func:`new_item_list`).
    """
    targets = ctx.target_users.select(COL_USER_IDX).distinct()
    tiers = materialise(user_tiers(ctx.interactions, targets, int(hc["cold_start_max_events"])))
    segment = segment_popularity(
        ctx.events, ctx.users, targets, ctx.seen, n, int(hc["min_segment_users"]), _window_days(ctx)
    )
    lists = {name: cand.recs for name, cand in candidates.items()}
    lists[SEGMENT] = segment
    if new_items is not None:
        lists[NEW_ITEMS] = new_item_list(
            ctx, candidates.get(ALGO_CONTENT), new_items, int(hc["new_item_slots"])
        )
    contribs = materialise(contributions(lists, tiers, hc["score_norm"], int(hc["rrf_k"])))
    return tiers, contribs


def _uses_new_items(warm: Mapping[str, float], hc: Mapping[str, Any]) -> bool:
    return warm.get(NEW_ITEMS, 0.0) > 0 or float(hc["cold_weights"].get(NEW_ITEMS, 0.0)) > 0


def blend(
    ctx: FitContext,
    candidates: Mapping[str, Candidates],
    weights: Mapping[str, float] | None = None,
    conf: Mapping[str, Any] | None = None,
) -> Candidates:
    """One hybrid list per target user from the generators' ``candidates`` (see the module docstring).

    Parameters
    ----------
    ctx : FitContext
        Training data of the split (``events`` and ``users`` for segment popularity, ``items`` for
        genres, maturity and titles), ``target_users``, ``seen`` and the list length ``n``.
        ``ctx.extras["explain"] = False`` skips the explanations (evaluation does not need them).
    candidates : mapping
        Algorithm name -> its :class:`Candidates` for (a superset of) the target users. The
        ``item_vectors``/``user_profiles`` artifacts of ``content`` (new items, content neighbours)
        and the ``neighbours`` of ``itemknn`` (explanations) are reused when present.
    weights : mapping, optional
        Warm-tier weight per algorithm (and ``new_items``); default ``hybrid.weights``.
    conf : mapping, optional
        The ``hybrid`` section; default ``ctx.conf["hybrid"]`` over :data:`DEFAULTS`.

    Returns
    -------
    Candidates
        ``recs`` under the generator contract; ``artifacts["tiers"]``; unless explanations are off,
        ``artifacts["reasons"]`` ``(user_idx, item_idx, reason)`` with one non-null reason per row
        of ``recs``.
    """
    hc = hybrid_conf({CONF_SECTION: dict(conf)}) if conf is not None else hybrid_conf(ctx.conf)
    warm = {str(k): float(v) for k, v in (weights if weights is not None else hc["weights"]).items()}
    n = ctx.n
    fresh = (
        materialise(new_item_ids(ctx.interactions, ctx.items, int(hc["new_item_max_users"])))
        if _uses_new_items(warm, hc)
        else None
    )
    tiers, contribs = _prepared(ctx, candidates, hc, max(n * int(hc["rerank_pool"]), n), fresh)
    table = weight_table(ctx.spark, warm, hc["cold_weights"])
    scored = blend_scores(contribs, table).join(
        ctx.seen.select(COL_USER_IDX, COL_ITEM_IDX), [COL_USER_IDX, COL_ITEM_IDX], "left_anti"
    )
    scored = materialise(
        maturity_filter(scored, ctx.users, ctx.items, hc["restricted_age_bands"], hc["restricted_ratings"])
    )
    lam, cap = float(hc["mmr_lambda"]), int(hc["max_per_genre"])
    if lam < 1.0 or cap > 0:
        recs = rerank_lists(scored.drop(_TOP), ctx.items, n, lam, cap, n * int(hc["rerank_pool"]))
    else:
        recs = rank_per_user(scored.drop(_TOP), n)
    recs = materialise(recs)
    params = {
        **{k: v for k, v in hc.items() if k != "weights"},
        "weights": warm,
        "components": {name: cand.model_version for name, cand in sorted(candidates.items())},
    }
    version = model_version(ALGO_HYBRID, ctx.run_date, params)
    artifacts: dict[str, DataFrame] = {"tiers": tiers}
    if ctx.extras.get("explain", True):
        artifacts["reasons"] = _reasons(ctx, candidates, hc, recs, scored, tiers, fresh)
    return Candidates(recs, version, artifacts)


def _reasons(
    ctx: FitContext,
    candidates: Mapping[str, Candidates],
    hc: Mapping[str, Any],
    recs: DataFrame,
    scored: DataFrame,
    tiers: DataFrame,
    fresh: DataFrame | None,
) -> DataFrame:
    """:func:`explain` with the co-watch neighbours of item-kNN and content neighbours of the vectors."""
    from vidrec.content import content_neighbours

    content = candidates.get(ALGO_CONTENT)
    knn = candidates.get(ALGO_ITEMKNN)
    vectors = content.artifacts.get("item_vectors") if content is not None else None
    if vectors is None:
        vectors = item_vectors(ctx.items, content_conf(ctx.conf))
    block = int((ctx.conf.get("recommend") or {}).get("user_block_size", 2048))
    similar = content_neighbours(ctx.spark, vectors, REASON_NEIGHBOURS, block_size=block)
    neighbours = knn.artifacts.get("neighbours") if knn is not None else None
    return explain(
        recs,
        scored.select(COL_USER_IDX, COL_ITEM_IDX, _TOP),
        tiers,
        ctx.interactions,
        ctx.items,
        ctx.run_date,
        neighbours,
        similar,
        int(hc["new_release_years"]),
        int(hc["reason_history"]),
        fresh,
    )


# --- weights on a validation split --------------------------------------------------------------


def validation_context(ctx: FitContext, fraction: float = 0.1) -> tuple[FitContext, DataFrame]:
    """A context over the training events before their ``1 - fraction`` time quantile, and the
    relevant pairs of the events after it (the evaluation protocol, inside the training data).

    Returns
    -------
    FitContext
        Interactions, events, seen pairs and target users (those with a relevant validation pair)
        of the carved split; everything else as in ``ctx``.
    DataFrame
        ``(user_idx, item_idx)`` relevant validation pairs.
    """
    from vidrec.evaluate import relevant_pairs, seen_pairs
    from vidrec.matrix import build_interactions
    from vidrec.splits import time_cutoff_split

    train_ev, val_ev, cutoff = time_cutoff_split(ctx.events, fraction, col_user=COL_USER_IDX)
    train_ev = train_ev.cache()
    user_index = ctx.events.select(COL_USER, COL_USER_IDX).distinct()
    item_index = ctx.items.select(COL_ITEM, COL_ITEM_IDX).distinct()
    mw = ctx.conf["matrix"]["weights"]
    train_i = build_interactions(train_ev, ctx.items, user_index, item_index, mw).cache()
    val_i = build_interactions(val_ev, ctx.items, user_index, item_index, mw)
    exclude_played = bool((ctx.conf.get("recommend") or {}).get("exclude_played", False))
    seen = seen_pairs(train_i, exclude_played).cache()
    relevant = relevant_pairs(val_i).join(seen, [COL_USER_IDX, COL_ITEM_IDX], "left_anti").cache()
    log.info("hybrid: validation cut-off %s inside the training data", cutoff.isoformat())
    extras = {k: v for k, v in ctx.extras.items() if k not in ("candidates", "save_model")}
    vctx = dataclasses.replace(
        ctx,
        interactions=train_i,
        events=train_ev,
        target_users=relevant.select(COL_USER_IDX).distinct(),
        seen=seen,
        work_dir=f"{ctx.work_dir}/validation",
        extras=extras,
    )
    return vctx, relevant


def choose_weights(
    ctx: FitContext,
    components: Sequence[str] | None = None,
    grid: Sequence[float] | None = None,
    k: int = 10,
    conf: Mapping[str, Any] | None = None,
) -> tuple[dict[str, float], float]:
    """Warm-tier blend weights with the best NDCG@``k`` on a validation split of the training data.

    The split is :func:`validation_context` (last ``validation_fraction`` of the training events;
    the test split is not touched). Each component is fitted once on it; then coordinate ascent
    from ``hybrid.weights``: for each component in turn, each value of ``grid`` with the others
    fixed, keeping the best, for ``tune_rounds`` rounds or until nothing improves. Blends are
    scored with :func:`vidrec.metrics.ranking_metrics` (no re-ranking or filters).

    Parameters
    ----------
    ctx : FitContext
    components : sequence of str, optional
        Algorithms to weigh (default: :func:`component_names`).
    grid : sequence of float, optional
        Weight values tried (default ``hybrid.weight_grid``).
    k : int
        Cut-off of the NDCG.
    conf : mapping, optional
        The ``hybrid`` section (default from ``ctx.conf``).

    Returns
    -------
    weights : dict
        Algorithm -> weight (all ``components``).
    ndcg : float
        Validation NDCG@k of those weights.

    Raises
    ------
    ValueError
        When the grid is empty or holds a negative value.
    """
    hc = hybrid_conf({CONF_SECTION: dict(conf)}) if conf is not None else hybrid_conf(ctx.conf)
    names = list(components) if components is not None else component_names(hc)
    values = sorted({float(v) for v in (grid if grid is not None else hc["weight_grid"])})
    if not values or values[0] < 0:
        raise ValueError(f"weight grid must be non-empty and >= 0, got {values}")
    vctx, relevant = validation_context(ctx, float(hc["validation_fraction"]))
    pool_ctx = dataclasses.replace(vctx, n=max(k, int(hc["pool_n"])))
    cands = {name: generators.get(name)(pool_ctx) for name in names if name != NEW_ITEMS}
    for cand in cands.values():
        cand.recs.cache()
    fresh = None
    if NEW_ITEMS in names or _uses_new_items(hc["weights"], hc):
        fresh = materialise(new_item_ids(vctx.interactions, vctx.items, int(hc["new_item_max_users"])))
    _, contribs = _prepared(vctx, cands, hc, k, fresh)
    from vidrec.tune import coordinate_search

    start = {a: float(hc["weights"].get(a, 0.0)) for a in names}

    def ndcg(w: Mapping[str, float]) -> float:
        if w != start and all(x == 0 for x in w.values()):
            return float("-inf")  # a blend of nothing: never chosen, never scored
        table = weight_table(ctx.spark, w, hc["cold_weights"])
        recs = rank_per_user(blend_scores(contribs, table).drop(_TOP), k)
        score = metrics.ranking_metrics(recs, relevant, k)["ndcg"]
        log.info("hybrid: validation ndcg@%d=%.4f for %s", k, score, dict(w))
        return score

    space = {a: values for a in names}
    return coordinate_search(space, start, ndcg, int(hc["tune_rounds"]))


# --- evaluation slices --------------------------------------------------------------------------


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
        :func:`vidrec.metrics.ranking_metrics` as the relevant set (split
        ``time_cutoff:cold_users`` / ``time_cutoff:cold_items``).
    """
    pos = train_interactions.where(F.col(COL_CONFIDENCE) > 0)
    rel = relevant.select(COL_USER_IDX, COL_ITEM_IDX).distinct()
    counts = pos.groupBy(COL_USER_IDX).agg(F.countDistinct(COL_ITEM_IDX).alias("_n"))
    cold_users = (
        rel.join(counts, COL_USER_IDX, "left")
        .where(F.coalesce(F.col("_n"), F.lit(0)) <= F.lit(int(max_user_events)))
        .select(COL_USER_IDX, COL_ITEM_IDX)
    )
    cold_items = rel.join(pos.select(COL_ITEM_IDX).distinct(), COL_ITEM_IDX, "left_anti").select(
        COL_USER_IDX, COL_ITEM_IDX
    )
    return {"cold_users": cold_users, "cold_items": cold_items}


# --- the generator ------------------------------------------------------------------------------


@register(ALGO_HYBRID)
def generate_hybrid(ctx: FitContext) -> Candidates:
    """The hybrid as a generator: fit the components, optionally tune the weights, :func:`blend`.

    Components already fitted on the same context can be passed as ``ctx.extras["candidates"]``
    (name -> :class:`Candidates`, e.g. by the nightly recommend stage) and are not refitted; the
    others are fitted here with lists of ``max(n, hybrid.pool_n)``. ``ctx.extras["components"]``,
    when given (the nightly passes ``models``), limits the components to those names: a weighted
    generator not among them is left out with a warning rather than fitted behind the user's back.
    """
    hc = hybrid_conf(ctx.conf)
    given: Mapping[str, Candidates] = ctx.extras.get("candidates") or {}
    names = component_names(hc)
    allowed = ctx.extras.get("components")
    if allowed is not None:
        left_out = [a for a in names if a not in allowed]
        if left_out:
            log.warning("hybrid: %s have a positive weight but are not in `models`: left out", left_out)
        names = [a for a in names if a in allowed]
    pool_ctx = dataclasses.replace(ctx, n=max(ctx.n, int(hc["pool_n"])))
    cands = {name: given[name] if name in given else generators.get(name)(pool_ctx) for name in names}
    weights = hc["weights"]
    if hc["tune_weights"]:
        k = int((ctx.conf.get("evaluation") or {}).get("k", 10))
        names = [a for a in cands if a in hc["weights"]] + ([NEW_ITEMS] if NEW_ITEMS in hc["weights"] else [])
        tuned, score = choose_weights(ctx, names, k=k, conf=hc)
        weights = {**weights, **tuned}
        log.info("hybrid: tuned weights %s (validation ndcg@%d=%.4f)", tuned, k, score)
    return blend(ctx, cands, weights, hc)
