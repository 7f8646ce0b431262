"""Filters and re-ranking of the blended list: maturity restrictions, genre diversity (MMR) and caps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vidrec.constants import (
    COL_AGE_BAND,
    COL_GENRES,
    COL_ITEM_IDX,
    COL_MATURITY,
    COL_RANK,
    COL_SCORE,
    COL_USER_IDX,
)
from vidrec.models.topn import RECS_SCHEMA


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
    sets = [
        frozenset(cast(Iterable[str], genres[k])) if genres[k] is not None else frozenset() for k in order
    ]
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
