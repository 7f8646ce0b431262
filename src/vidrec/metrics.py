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

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vidrec.constants import COL_GENRES, COL_ITEM_IDX, COL_RANK, COL_USER_IDX

RANKING_METRICS = ("precision", "recall", "f1", "ndcg", "map", "hit_rate", "mrr")


def ranking_metrics(recs: DataFrame, relevant: DataFrame, k: int) -> dict[str, float]:
    """Mean ranking metrics at ``k`` over the users of ``relevant``.

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
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rel = relevant.select(COL_USER_IDX, COL_ITEM_IDX).distinct()
    rel_sets = rel.groupBy(COL_USER_IDX).agg(F.collect_set(COL_ITEM_IDX).alias("_rel"))
    top = recs.where(F.col(COL_RANK) <= k).select(COL_USER_IDX, COL_ITEM_IDX, COL_RANK)
    lists = top.groupBy(COL_USER_IDX).agg(
        F.sort_array(F.collect_list(F.struct(COL_RANK, COL_ITEM_IDX))).alias("_l")
    )
    per_user = rel_sets.join(lists, COL_USER_IDX, "left").select(
        "_rel", F.coalesce(F.col("_l"), F.array()).alias("_l")
    )
    hits = F.transform("_l", lambda x: F.when(F.array_contains("_rel", x[COL_ITEM_IDX]), 1.0).otherwise(0.0))
    per_user = per_user.select(
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
        (n_hit / k).alias("precision"),
        (n_hit / F.col("n_rel")).alias("recall"),
        (dcg / idcg).alias("ndcg"),
        ap.alias("map"),
        F.when(n_hit > 0, 1.0).otherwise(0.0).alias("hit_rate"),
        F.coalesce(1.0 / first_hit, F.lit(0.0)).alias("mrr"),
    )
    row = scored.agg(
        *[F.avg(c).alias(c) for c in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")],
        F.count(F.lit(1)).alias("users"),
    ).first()
    out = {c: float(row[c] or 0.0) for c in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")}
    p, r = out["precision"], out["recall"]
    out["f1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    out["users"] = float(row["users"])
    return out


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
    return {"rmse": float(row["rmse"] or 0.0), "mae": float(row["mae"] or 0.0), "n": float(row["n"])}
