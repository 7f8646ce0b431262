"""Ranking, beyond-accuracy and rating metrics, computed in Spark.

Definitions (per user u with recommended list R_u cut at K and relevant set T_u, then averaged over
the evaluated users — those with at least one relevant test item; a user with no list scores 0):
- precision@K = |R_u ∩ T_u| / K; recall@K = |R_u ∩ T_u| / |T_u|;
- F1@K = 2PR / (P + R) of the mean precision and mean recall;
- NDCG@K = DCG / IDCG, DCG = Σ_{i≤K} rel_i / log2(i + 1), IDCG over min(|T_u|, K) hits;
- MAP@K = Σ_{i≤K} precision@i · rel_i / min(|T_u|, K);
- hit rate@K = [|R_u ∩ T_u| > 0]; MRR@K = 1 / rank of the first hit (0 if none);
- catalog coverage = distinct recommended items / catalog size;
- intra-list diversity = mean over users of the mean pairwise genre Jaccard distance in R_u;
- novelty = mean over recommended items of −log2(share of training users who interacted with it);
- RMSE / MAE of predicted against held-out explicit ratings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.constants import COL_GENRES, COL_ITEM_IDX, COL_RANK, COL_USER_IDX

RANKING_METRICS = ("precision", "recall", "f1", "ndcg", "map", "hit_rate", "mrr")


def ranking_metrics_table(
    recs: DataFrame,
    relevant: DataFrame,
    k: int,
    rec_groups: Sequence[str] = (),
    rel_groups: Sequence[str] = (),
    user: str = COL_USER_IDX,
    item: str = COL_ITEM_IDX,
) -> DataFrame:
    """Mean ranking metrics at ``k`` per group, for every group at once (one Spark job when collected).

    Every group of ``rec_groups`` (e.g. the algorithm) is scored against every group of
    ``rel_groups`` (e.g. an evaluation slice): per (rec group, rel group), the users evaluated are
    the users of that relevant set, and a user the rec group has no list for scores 0.

    Parameters
    ----------
    recs : DataFrame
        ``(*rec_groups, user, item, rank)``.
    relevant : DataFrame
        ``(*rel_groups, user, item)`` relevant pairs.
    k : int
    rec_groups, rel_groups : sequence of str
        Grouping columns of each side (may be empty).
    user, item : str
        Id columns.

    Returns
    -------
    DataFrame
        ``(*rec_groups, *rel_groups, precision, recall, ndcg, map, hit_rate, mrr, users)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rec_groups, rel_groups = list(rec_groups), list(rel_groups)
    rel_sets = (
        relevant.select(*rel_groups, user, item)
        .distinct()
        .groupBy(*rel_groups, user)
        .agg(F.collect_set(item).alias("_rel"))
    )
    top = recs.where(F.col(COL_RANK) <= k).select(*rec_groups, user, item, COL_RANK)
    lists = top.groupBy(*rec_groups, user).agg(
        F.sort_array(F.collect_list(F.struct(COL_RANK, item))).alias("_l")
    )
    if rec_groups:
        rel_sets = rel_sets.crossJoin(F.broadcast(recs.select(*rec_groups).distinct()))
    per_user = rel_sets.join(lists, [*rec_groups, user], "left").select(
        *rec_groups, *rel_groups, "_rel", F.coalesce(F.col("_l"), F.array()).alias("_l")
    )
    hits = F.transform("_l", lambda x: F.when(F.array_contains("_rel", x[item]), 1.0).otherwise(0.0))
    per_user = per_user.select(
        *rec_groups,
        *rel_groups,
        F.size("_rel").alias("n_rel"),
        hits.alias("hits"),
        F.transform("_l", lambda x: x[COL_RANK]).alias("ranks"),
    )
    n_hit = F.aggregate("hits", F.lit(0.0), lambda acc, h: acc + h)
    dcg = F.aggregate(
        F.arrays_zip("hits", "ranks"), F.lit(0.0), lambda acc, z: acc + z["hits"] / F.log2(z["ranks"] + 1.0)
    )
    ideal_n = F.least(F.col("n_rel"), F.lit(k))
    idcg = F.aggregate(
        F.sequence(F.lit(1), ideal_n), F.lit(0.0), lambda acc, i: acc + 1.0 / F.log2(i.cast("double") + 1.0)
    )
    # precision at each hit position: (hits so far) / rank
    cum = F.transform(
        "hits", lambda h, i: F.aggregate(F.slice("hits", 1, i + 1), F.lit(0.0), lambda a, x: a + x)
    )
    ap = (
        F.aggregate(
            F.arrays_zip("hits", "ranks", cum.alias("cum")),
            F.lit(0.0),
            lambda acc, z: acc + z["hits"] * z["cum"] / z["ranks"],
        )
        / ideal_n
    )
    first_hit = F.array_min(F.filter(F.arrays_zip("hits", "ranks"), lambda z: z["hits"] > 0)["ranks"])
    scored = per_user.select(
        *rec_groups,
        *rel_groups,
        (n_hit / k).alias("precision"),
        (n_hit / F.col("n_rel")).alias("recall"),
        (dcg / idcg).alias("ndcg"),
        ap.alias("map"),
        F.when(n_hit > 0, 1.0).otherwise(0.0).alias("hit_rate"),
        F.coalesce(1.0 / first_hit, F.lit(0.0)).alias("mrr"),
    )
    return scored.groupBy(*rec_groups, *rel_groups).agg(
        *[F.avg(c).alias(c) for c in RANKING_AVERAGES], F.count(F.lit(1)).alias("users")
    )


#: The per-user ranking metrics that are averaged (F1 is computed from the mean precision and recall).
RANKING_AVERAGES = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")


def with_f1(values: dict[str, float]) -> dict[str, float]:
    """``values`` with ``f1`` = 2PR / (P + R) of its mean precision and recall."""
    p, r = values.get("precision", 0.0), values.get("recall", 0.0)
    return {**values, "f1": 2 * p * r / (p + r) if p + r > 0 else 0.0}


def ranking_metrics(recs: DataFrame, relevant: DataFrame, k: int) -> dict[str, float]:
    """Mean ranking metrics at ``k`` over the users of ``relevant`` (one list set, one relevant set).

    Parameters
    ----------
    recs : DataFrame
        ``(user_idx, item_idx, rank)``.
    relevant : DataFrame
        ``(user_idx, item_idx)`` relevant held-out pairs.
    k : int

    Returns
    -------
    dict
        ``precision, recall, f1, ndcg, map, hit_rate, mrr`` and ``users`` (how many were evaluated).
    """
    rows = ranking_metrics_table(recs, relevant, k).collect()
    if not rows:
        return {**{m: 0.0 for m in RANKING_METRICS}, "users": 0.0}
    out = with_f1({c: float(rows[0][c] or 0.0) for c in RANKING_AVERAGES})
    out["users"] = float(rows[0]["users"])
    return out


def beyond_accuracy_table(
    recs: DataFrame, items: DataFrame, train: DataFrame, n_catalog: int, k: int, groups: Sequence[str] = ()
) -> DataFrame:
    """Catalog coverage, intra-list diversity and novelty at ``k`` per group (one Spark job when collected).

    - coverage: distinct items in the top-``k`` lists over the catalog size;
    - diversity: mean over users of the mean pairwise genre Jaccard distance within the top-``k``
      list (``items`` holds ``(item_idx, genres)``; lists with fewer than two items are skipped);
    - novelty: mean self-information −log2(p_i) of recommended items, p_i = share of training users
      (``train`` pairs) with item i; an item nobody had in training takes the share of one user.

    Returns ``(*groups, coverage, diversity, novelty)``.
    """
    if n_catalog <= 0:
        raise ValueError("n_catalog must be > 0")
    groups = list(groups)
    top = recs.where(F.col(COL_RANK) <= k).select(*groups, COL_USER_IDX, COL_ITEM_IDX, COL_RANK)
    coverage = top.groupBy(*groups).agg(
        (F.countDistinct(COL_ITEM_IDX) / F.lit(float(n_catalog))).alias("coverage")
    )
    genres = top.join(items.select(COL_ITEM_IDX, COL_GENRES), COL_ITEM_IDX)
    a, b = genres.alias("a"), genres.alias("b")
    same = [F.col(f"a.{g}") == F.col(f"b.{g}") for g in [*groups, COL_USER_IDX]]
    cond = same[0]
    for c in same[1:]:
        cond = cond & c
    pairs = a.join(b, cond & (F.col(f"a.{COL_RANK}") < F.col(f"b.{COL_RANK}")))
    inter = F.size(F.array_intersect(f"a.{COL_GENRES}", f"b.{COL_GENRES}"))
    union = F.size(F.array_union(f"a.{COL_GENRES}", f"b.{COL_GENRES}"))
    dist = F.when(union > 0, 1.0 - inter / union).otherwise(0.0)
    per_user = pairs.groupBy(*[F.col(f"a.{g}").alias(g) for g in groups], F.col(f"a.{COL_USER_IDX}")).agg(
        F.avg(dist).alias("_d")
    )
    diversity = per_user.groupBy(*groups).agg(F.avg("_d").alias("diversity"))
    n_users = train.select(COL_USER_IDX).distinct().agg(F.count(F.lit(1)).alias("_n"))
    pop = train.groupBy(COL_ITEM_IDX).agg(F.countDistinct(COL_USER_IDX).alias("_u"))
    info = -F.log2(F.coalesce(F.col("_u"), F.lit(1)) / F.col("_n"))
    novelty = (
        top.join(pop, COL_ITEM_IDX, "left")
        .crossJoin(F.broadcast(n_users))
        .where(F.col("_n") > 0)
        .groupBy(*groups)
        .agg(F.avg(info).alias("novelty"))
    )
    if not groups:
        return coverage.crossJoin(diversity).crossJoin(novelty)  # global aggregates: one row each
    return coverage.join(diversity, groups, "left").join(novelty, groups, "left")


def catalog_coverage(recs: DataFrame, n_catalog: int, k: int) -> float:
    """Distinct items in the top-``k`` lists over the catalog size."""
    if n_catalog <= 0:
        raise ValueError("n_catalog must be > 0")
    return recs.where(F.col(COL_RANK) <= k).select(COL_ITEM_IDX).distinct().count() / n_catalog


def intra_list_diversity(recs: DataFrame, items: DataFrame, k: int) -> float:
    """Mean over users of the mean pairwise genre Jaccard distance within the top-``k`` list.

    ``items`` holds ``(item_idx, genres)``. Lists with fewer than two items are skipped.
    """
    top = recs.where(F.col(COL_RANK) <= k).join(items.select(COL_ITEM_IDX, COL_GENRES), COL_ITEM_IDX)
    a, b = top.alias("a"), top.alias("b")
    pairs = a.join(
        b,
        (F.col(f"a.{COL_USER_IDX}") == F.col(f"b.{COL_USER_IDX}"))
        & (F.col(f"a.{COL_RANK}") < F.col(f"b.{COL_RANK}")),
    )
    inter = F.size(F.array_intersect(f"a.{COL_GENRES}", f"b.{COL_GENRES}"))
    union = F.size(F.array_union(f"a.{COL_GENRES}", f"b.{COL_GENRES}"))
    dist = F.when(union > 0, 1.0 - inter / union).otherwise(0.0)
    per_user = pairs.groupBy(f"a.{COL_USER_IDX}").agg(F.avg(dist).alias("d"))
    row = per_user.agg(F.avg("d")).first()
    return float(row[0]) if row and row[0] is not None else 0.0


def novelty(recs: DataFrame, train: DataFrame, k: int) -> float:
    """Mean self-information −log2(p_i) of recommended items, p_i = share of training users with item i.

    ``train`` holds the training ``(user_idx, item_idx)`` pairs; items never seen in training take
    the share of one user.
    """
    n_users = train.select(COL_USER_IDX).distinct().count()
    if n_users == 0:
        return 0.0
    pop = train.groupBy(COL_ITEM_IDX).agg(F.countDistinct(COL_USER_IDX).alias("_u"))
    top = recs.where(F.col(COL_RANK) <= k).join(pop, COL_ITEM_IDX, "left")
    info = -F.log2(F.coalesce(F.col("_u"), F.lit(1)) / F.lit(float(n_users)))
    row = top.agg(F.avg(info)).first()
    return float(row[0]) if row and row[0] is not None else 0.0


def rating_errors(
    predicted: DataFrame, actual: DataFrame, col_pred: str = "prediction", col_true: str = "rating"
) -> dict[str, float]:
    """RMSE and MAE over the pairs of ``actual`` that ``predicted`` covers (joined on user/item)."""
    joined = predicted.join(actual, [COL_USER_IDX, COL_ITEM_IDX]).where(F.col(col_pred).isNotNull())
    row = joined.agg(
        F.sqrt(F.avg((F.col(col_pred) - F.col(col_true)) ** 2)).alias("rmse"),
        F.avg(F.abs(F.col(col_pred) - F.col(col_true))).alias("mae"),
        F.count(F.lit(1)).alias("n"),
    ).first()
    assert row is not None, "an aggregate without grouping returns one row"
    return {"rmse": float(row["rmse"] or 0.0), "mae": float(row["mae"] or 0.0), "n": float(row["n"])}


def ranking_metrics_local(recs: pd.DataFrame, relevant: pd.DataFrame, k: int) -> dict[str, float]:
    """:func:`vidrec.evaluation.metrics.ranking_metrics` on the driver, for lists already collected.

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
    width = int(max(rel[C.COL_ITEM_IDX].max(), top[C.COL_ITEM_IDX].max() if len(top) else 0)) + 1
    rel_codes = rel[C.COL_USER_IDX].to_numpy(np.int64) * width + rel[C.COL_ITEM_IDX].to_numpy(np.int64)
    u = top[C.COL_USER_IDX].to_numpy(np.int64)
    hit = np.zeros((len(users), k), dtype=bool)
    hit[np.searchsorted(users, u), top[C.COL_RANK].to_numpy(np.int64) - 1] = np.isin(
        u * width + top[C.COL_ITEM_IDX].to_numpy(np.int64), rel_codes
    )
    return metrics_from_hits(hit, n_rel, len(users))


def metrics_from_hits(hit: np.ndarray, n_rel: np.ndarray, n_users: int) -> dict[str, float]:
    """Ranking metrics at ``k`` from ``hit`` ``(users with a list, k)``: whether rank ``r + 1`` is relevant.

    ``n_rel`` is each of those users' number of relevant items; ``n_users`` counts every evaluated
    user (those without a list score 0). The definitions of :func:`ranking_metrics_local`.
    """
    k = hit.shape[1]
    h = hit.astype(np.float64)
    rank = np.arange(1, k + 1, dtype=np.float64)
    hits = h.sum(axis=1)
    disc = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    ideal_n = np.minimum(n_rel, k)
    dcg = (h / np.log2(rank + 1.0)).sum(axis=1)
    ap = (h * np.cumsum(h, axis=1) / rank).sum(axis=1) / ideal_n
    first = np.where(hits > 0, np.argmax(hit, axis=1) + 1.0, np.inf)
    out = {
        "precision": float(np.sum(hits / k) / n_users),
        "recall": float(np.sum(hits / n_rel) / n_users),
        "ndcg": float(np.sum(dcg / disc[ideal_n]) / n_users),
        "map": float(np.sum(ap) / n_users),
        "hit_rate": float(np.sum(hits > 0) / n_users),
        "mrr": float(np.sum(np.where(np.isfinite(first), 1.0 / first, 0.0)) / n_users),
    }
    p, r = out["precision"], out["recall"]
    out["f1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    out["users"] = float(n_users)
    return out
