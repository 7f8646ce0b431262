"""Metric functions against values computed by hand."""

from __future__ import annotations

import math

import pytest

from vidrec.evaluation import metrics

pytestmark = pytest.mark.spark

# user 1: list [1, 2, 3], relevant {2, 4}; user 2: list [5, 6, 7], relevant {5}; user 3: no list, relevant {8}
RECS = [(1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 5, 1), (2, 6, 2), (2, 7, 3)]
RELEVANT = [(1, 2), (1, 4), (2, 5), (3, 8)]


@pytest.fixture()
def recs(spark):
    return spark.createDataFrame(RECS, "user_idx int, item_idx int, rank int")


@pytest.fixture()
def relevant(spark):
    return spark.createDataFrame(RELEVANT, "user_idx int, item_idx int")


def test_ranking_metrics_by_hand(recs, relevant) -> None:
    got = metrics.ranking_metrics(recs, relevant, k=3)
    ndcg_u1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    expected = {
        "precision": (1 / 3 + 1 / 3 + 0) / 3,
        "recall": (1 / 2 + 1 + 0) / 3,
        "ndcg": (ndcg_u1 + 1 + 0) / 3,
        "map": ((1 / 2) / 2 + 1 + 0) / 3,  # user 1: hit at rank 2 with precision 1/2, over min(2, 3)
        "hit_rate": 2 / 3,
        "mrr": (1 / 2 + 1 + 0) / 3,
        "users": 3.0,
    }
    p, r = expected["precision"], expected["recall"]
    expected["f1"] = 2 * p * r / (p + r)
    assert got == pytest.approx(expected)


def test_ranking_metrics_cut_at_k(recs, relevant) -> None:
    got = metrics.ranking_metrics(recs, relevant, k=1)
    # only rank 1 counts: user 2 hits, user 1 misses
    assert got["precision"] == pytest.approx(1 / 3)
    assert got["ndcg"] == pytest.approx(1 / 3)
    assert got["mrr"] == pytest.approx(1 / 3)


def test_ranking_metrics_rejects_bad_k(recs, relevant) -> None:
    with pytest.raises(ValueError, match="k must be"):
        metrics.ranking_metrics(recs, relevant, k=0)


def test_coverage_and_novelty(spark, recs) -> None:
    assert metrics.catalog_coverage(recs, n_catalog=12, k=3) == pytest.approx(6 / 12)
    # 4 training users; item 1 seen by 2 of them, item 5 by 1, others by none (count as 1)
    train = spark.createDataFrame([(1, 1), (2, 1), (3, 5), (4, 9)], "user_idx int, item_idx int")
    got = metrics.novelty(recs.where("rank = 1"), train, k=1)
    assert got == pytest.approx((-math.log2(2 / 4) - math.log2(1 / 4)) / 2)


def test_intra_list_diversity(spark) -> None:
    recs = spark.createDataFrame([(1, 1, 1), (1, 2, 2), (1, 3, 3)], "user_idx int, item_idx int, rank int")
    items = spark.createDataFrame(
        [(1, ["a", "b"]), (2, ["b"]), (3, ["c"])], "item_idx int, genres array<string>"
    )
    # pairs: (1,2) 1 - 1/2; (1,3) 1; (2,3) 1
    assert metrics.intra_list_diversity(recs, items, k=3) == pytest.approx((0.5 + 1 + 1) / 3)


def test_rating_errors(spark) -> None:
    pred = spark.createDataFrame([(1, 1, 4.0), (1, 2, 2.0)], "user_idx int, item_idx int, prediction double")
    true = spark.createDataFrame(
        [(1, 1, 5.0), (1, 2, 2.0), (2, 2, 1.0)], "user_idx int, item_idx int, rating double"
    )
    got = metrics.rating_errors(pred, true)
    assert got == pytest.approx({"rmse": math.sqrt(0.5), "mae": 0.5, "n": 2.0})
