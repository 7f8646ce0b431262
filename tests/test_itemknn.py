"""Item-kNN: co-watch cosine by hand, the generator's lists, ``gold/similar_items`` rows.

Co-watch fixture (positive pairs): users 0 and 1 watched items {0, 1}, user 2 {1, 2}, user 3 {3}.
So n_0 = 2, n_1 = 3, n_2 = 1, n_3 = 1; co(0, 1) = 2, co(1, 2) = 1; with no shrinkage
sim(0, 1) = 2 / sqrt(6), sim(1, 2) = 1 / sqrt(3), item 3 has no neighbour.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import assert_candidates

from vidrec.config import Config, load_config
from vidrec.constants import (
    COL_ALGORITHM,
    COL_CONFIDENCE,
    COL_ITEM,
    COL_ITEM_IDX,
    COL_LAST_TS,
    COL_RANK,
    COL_SCORE,
    COL_SIMILAR_ITEM,
    COL_USER_IDX,
)
from vidrec.models import itemknn
from vidrec.models.base import FitContext
from vidrec.models.itemknn import (
    SIMILAR_ITEMS_SCHEMA,
    capped_history,
    generate_itemknn,
    item_neighbours,
    similar_items,
    top_k_rows,
)

T0 = dt.datetime(2026, 3, 30, 12, 0)
INTER_SCHEMA = f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_CONFIDENCE} double, {COL_LAST_TS} timestamp"
POSITIVE = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (2, 2), (3, 3)]
S01, S12 = 2 / math.sqrt(6), 1 / math.sqrt(3)


def history(spark: Any) -> Any:
    return spark.createDataFrame([(u, i, 1.0, T0) for u, i in POSITIVE], INTER_SCHEMA)


def approx_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(pytest.approx(x) if isinstance(x, float) else x for x in r) for r in rows]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("neighbours", 0),
        ("max_items_per_user", 0),
        ("shrink", -1.0),
        ("min_co_users", 0),
        ("alpha", 0.0),
        ("beta", -0.5),
        ("similarity", "jaccard"),
    ],
)
def test_conf_refuses_bad_values(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"itemknn.{key} must be"):
        load_config(overrides={"itemknn": {key: value}})


@pytest.mark.spark
@pytest.mark.parametrize(
    ("k", "shrink", "expected"),
    [
        (2, 0.0, [(0, 1, S01, 1), (1, 0, S01, 1), (1, 2, S12, 2), (2, 1, S12, 1)]),
        (1, 0.0, [(0, 1, S01, 1), (1, 0, S01, 1), (2, 1, S12, 1)]),
        (2, 1.0, [(0, 1, 2 / (math.sqrt(6) + 1), 1), (1, 0, 2 / (math.sqrt(6) + 1), 1),
                  (1, 2, 1 / (math.sqrt(3) + 1), 2), (2, 1, 1 / (math.sqrt(3) + 1), 1)]),
    ],
)  # fmt: skip
@pytest.mark.parametrize("blocked_max_pairs", [0, 100])  # 0: Spark self-join; 100: item blocks
def test_item_neighbours(
    spark: Any, k: int, shrink: float, expected: list[tuple[Any, ...]], blocked_max_pairs: int
) -> None:
    hist = history(spark)
    got = sorted(
        tuple(r) for r in item_neighbours(hist, k, shrink, blocked_max_pairs=blocked_max_pairs).collect()
    )
    assert got == approx_rows(expected)


@pytest.mark.spark
@pytest.mark.parametrize("blocked_max_pairs", [0, 100])
def test_item_neighbours_rp3beta(spark: Any, blocked_max_pairs: int) -> None:
    # user degrees: users 0, 1, 2 watched two items, user 3 one; alpha 1, beta 0.5:
    # sim(i, j) = n_i^-1 * n_j^-0.5 * sum over co-watchers u of 1 / n_u
    rp3 = item_neighbours(history(spark), 2, similarity="rp3beta", blocked_max_pairs=blocked_max_pairs)
    got = sorted(tuple(r) for r in rp3.collect())
    assert got == approx_rows(
        [
            (0, 1, 1 / 2 / math.sqrt(3) * (1 / 2 + 1 / 2), 1),
            (1, 0, 1 / 3 / math.sqrt(2) * (1 / 2 + 1 / 2), 1),
            (1, 2, 1 / 3 / math.sqrt(1) * (1 / 2), 2),
            (2, 1, 1 / 1 / math.sqrt(3) * (1 / 2), 1),
        ]
    )
    # alpha flattens the walk: with alpha 0.5 and beta 0 item 1's neighbours are 0 then 2
    flat = item_neighbours(
        history(spark), 2, similarity="rp3beta", alpha=0.5, beta=0.0, blocked_max_pairs=blocked_max_pairs
    ).collect()
    by_pair = {(r[0], r[1]): r[2] for r in flat}
    assert by_pair[(1, 0)] == pytest.approx(3**-0.5 * 2 * 2**-0.5)
    with pytest.raises(ValueError, match="similarity must be one of"):
        item_neighbours(history(spark), 2, similarity="jaccard", blocked_max_pairs=0)


@pytest.mark.spark
@pytest.mark.parametrize("blocked_max_pairs", [0, 100])
def test_min_co_users_drops_rare_pairs(spark: Any, blocked_max_pairs: int) -> None:
    nb = item_neighbours(history(spark), 5, 0.0, min_co_users=2, blocked_max_pairs=blocked_max_pairs)
    assert sorted(tuple(r)[:2] for r in nb.collect()) == [(0, 1), (1, 0)]


def random_pairs(seed: int, users: int = 80, items: int = 30) -> list[tuple[int, int]]:
    """Skewed random positive pairs over sparse, non-contiguous ids (many tied co-counts)."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, items + 1)
    out = set()
    for u in range(users):
        n = int(rng.integers(1, 9))
        for i in rng.choice(items, size=min(n, items), replace=False, p=pop / pop.sum()):
            out.add((3 * u + 7, 5 * int(i) + 2))
    return sorted(out)


@pytest.mark.spark
@pytest.mark.parametrize(
    ("k", "shrink", "min_co", "similarity", "alpha", "beta"),
    [
        (3, 0.0, 1, "cosine", 1.0, 0.5),
        (50, 5.0, 1, "cosine", 1.0, 0.5),
        (4, 2.0, 2, "cosine", 1.0, 0.5),
        (3, 0.0, 1, "rp3beta", 1.0, 0.5),
        (5, 0.0, 2, "rp3beta", 0.6, 0.0),
    ],
)
def test_blocked_matches_self_join(
    spark: Any,
    monkeypatch: Any,
    k: int,
    shrink: float,
    min_co: int,
    similarity: str,
    alpha: float,
    beta: float,
) -> None:
    """Both ways of computing co-counts give the same neighbours, ranks and ties; the blocked one
    here split into many item blocks (tiny block limits) so blocks' edges are crossed."""
    monkeypatch.setattr(itemknn, "BLOCK_CELLS", 7 * 30)
    monkeypatch.setattr(itemknn, "BLOCK_TRIPLES", 60)
    pairs = random_pairs(11)
    hist = spark.createDataFrame([(u, i, 1.0, T0) for u, i in pairs], INTER_SCHEMA)
    args = (k, shrink, min_co, similarity, alpha, beta)
    joined = sorted(tuple(r) for r in item_neighbours(hist, *args, blocked_max_pairs=0).collect())
    blocked = sorted(tuple(r) for r in item_neighbours(hist, *args, blocked_max_pairs=len(pairs)).collect())
    assert len(joined) > 20
    assert_same_neighbours(blocked, joined)
    # one pair over the threshold: the self-join answers (a Spark sum's order may move the last bit)
    over = sorted(tuple(r) for r in item_neighbours(hist, *args, blocked_max_pairs=len(pairs) - 1).collect())
    assert_same_neighbours(over, joined)


def assert_same_neighbours(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    """Same ``(item, neighbour, rank)`` rows and scores to 1e-12; a sum's order may move a score's last
    bit, so two neighbours whose scores agree to 1e-12 may swap ranks."""

    def canon(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        keyed = sorted((r[0], -round(r[2], 12), r[1]) for r in rows)
        return [(i, j, -s) for i, s, j in keyed]

    assert [r[3] for r in sorted(got, key=lambda r: (r[0], r[3]))] == [
        r[3] for r in sorted(expected, key=lambda r: (r[0], r[3]))
    ]
    assert canon(got) == canon(expected)


def test_co_matrix_counts_and_blocks() -> None:
    pairs = random_pairs(3, users=40, items=12)
    users = np.array([u for u, _ in pairs])
    items = np.array([i for _, i in pairs])
    m = itemknn.CoMatrix(users, items)
    x = np.zeros((len(np.unique(users)), m.n_items), np.int64)
    x[np.unique(users, return_inverse=True)[1], np.searchsorted(m.item_ids, items)] = 1
    weight = 1.0 / x.sum(axis=1)
    blocks = m.item_blocks(max_cells=3 * m.n_items, max_triples=40)
    assert blocks[0][0] == 0 and blocks[-1][1] == m.n_items
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    assert all(0 < hi - lo <= 3 for lo, hi in blocks)
    got_co = np.vstack([m.co_counts(lo, hi, weight)[0] for lo, hi in blocks])
    got_walk = np.vstack([m.co_counts(lo, hi, weight)[1] for lo, hi in blocks])
    np.testing.assert_array_equal(got_co, x.T @ x)
    np.testing.assert_allclose(got_walk, x.T @ (x * weight[:, None]))


def test_user_blocks_bound_users_and_triples() -> None:
    assert itemknn.user_blocks(np.array([3, 3, 3, 3, 3]), 2, 100) == [(0, 2), (2, 4), (4, 5)]
    assert itemknn.user_blocks(np.array([4, 4, 9, 1, 1]), 10, 8) == [(0, 2), (2, 3), (3, 5)]  # 9 > 8 alone
    assert itemknn.user_blocks(np.array([], dtype=np.int64), 2, 8) == []


def test_top_k_rows_ties_to_lower_column() -> None:
    inf = -np.inf
    score = np.array([[1.0, 3.0, 3.0, 2.0, 3.0], [inf, 0.5, inf, inf, inf], [inf] * 5])
    r, c, v, rank = top_k_rows(score, 2)
    assert list(zip(r.tolist(), c.tolist(), v.tolist(), rank.tolist(), strict=True)) == [
        (0, 1, 3.0, 1),
        (0, 2, 3.0, 2),
        (1, 1, 0.5, 1),
    ]
    r, c, _, rank = top_k_rows(score, 9)  # k above the columns: every finite score, in order
    assert c[r == 0].tolist() == [1, 2, 4, 3, 0] and rank[r == 0].tolist() == [1, 2, 3, 4, 5]


def reference_scores(
    history: pd.DataFrame, neighbours: pd.DataFrame, seen: pd.DataFrame, n: int
) -> list[tuple[int, int, float, int]]:
    """The definition, in pandas: a join of the histories with the neighbours, summed, seen pairs
    dropped, ranked by score then lower item (the Spark join's plan before the blocked scoring)."""
    joined = history.merge(neighbours, on=COL_ITEM_IDX)
    joined["w"] = joined[COL_SCORE] * joined[COL_CONFIDENCE]
    scores = joined.groupby([COL_USER_IDX, "neighbour_idx"], as_index=False)["w"].sum()
    scores = scores.rename(columns={"neighbour_idx": COL_ITEM_IDX})
    scores = scores.merge(seen, on=[COL_USER_IDX, COL_ITEM_IDX], how="left", indicator=True)
    scores = scores[scores["_merge"] == "left_only"].sort_values(
        [COL_USER_IDX, "w", COL_ITEM_IDX], ascending=[True, False, True]
    )
    scores["rank"] = scores.groupby(COL_USER_IDX).cumcount() + 1
    top = scores[scores["rank"] <= n]
    return [
        (int(u), int(i), float(w), int(k))
        for u, i, w, k in top[[COL_USER_IDX, COL_ITEM_IDX, "w", "rank"]].values
    ]


@pytest.mark.spark
@pytest.mark.parametrize(
    ("blocked_max_pairs", "block_cells", "block_triples"),
    [(10**6, None, None), (10**6, 40, 10), (0, None, None)],
)
def test_score_users_equals_the_join_of_histories_and_neighbours(
    spark: Any,
    monkeypatch: pytest.MonkeyPatch,
    blocked_max_pairs: int,
    block_cells: int | None,
    block_triples: int | None,
) -> None:
    if block_cells is not None:  # a few users per block (cells), often one (triples): many blocks a batch
        monkeypatch.setattr(itemknn, "BLOCK_CELLS", block_cells)
    if block_triples is not None:
        monkeypatch.setattr(itemknn, "BLOCK_TRIPLES", block_triples)
    rng = np.random.default_rng(5)
    items = np.arange(0, 60, 3)  # sparse item indexes
    nb_rows = [
        (int(i), int(j), float(rng.choice([0.25, 0.5, 0.75])))  # few values: ties after summing
        for i in items[:15]  # the last 5 items have no neighbours of their own
        for j in rng.choice(items, 4, replace=False)
        if i != j
    ]
    nb_rows += [(900, 901, 0.5)]  # neighbours of items nobody here watched
    hist_rows = {
        (int(u), int(i)): float(rng.choice([0.5, 1.0, 2.0])) for u in range(25) for i in rng.choice(items, 4)
    }
    hist_rows[(30, int(items[-1]))] = 1.0  # a user whose only item has no neighbour: no list
    seen_rows = sorted(set(hist_rows) | {(int(u), int(rng.choice(items))) for u in range(25)} | {(7, 999)})
    history_pd = pd.DataFrame(
        [(u, i, c) for (u, i), c in hist_rows.items()], columns=[COL_USER_IDX, COL_ITEM_IDX, COL_CONFIDENCE]
    )
    nb_pd = pd.DataFrame(nb_rows, columns=[COL_ITEM_IDX, "neighbour_idx", COL_SCORE])
    seen_pd = pd.DataFrame(seen_rows, columns=[COL_USER_IDX, COL_ITEM_IDX])
    got = itemknn.score_users(
        spark.createDataFrame(history_pd),
        spark.createDataFrame(nb_pd),
        spark.createDataFrame(seen_pd),
        4,
        blocked_max_pairs=blocked_max_pairs,
    )
    rows = sorted(tuple(r) for r in got.collect())
    expected = sorted(reference_scores(history_pd, nb_pd, seen_pd, 4))
    assert len(expected) > 50 and any(k > 1 for *_, k in expected)
    assert [r[:2] + r[3:] for r in rows] == [r[:2] + r[3:] for r in expected]
    np.testing.assert_allclose([r[2] for r in rows], [r[2] for r in expected], rtol=1e-12)
    assert not any(u == 30 for u, *_ in rows)
    with pytest.raises(ValueError, match="n must be >= 1"):
        itemknn.score_users(
            spark.createDataFrame(history_pd),
            spark.createDataFrame(nb_pd),
            spark.createDataFrame(seen_pd),
            0,
            blocked_max_pairs=blocked_max_pairs,
        )


@pytest.mark.spark
def test_capped_history_keeps_strongest(spark: Any) -> None:
    inter = spark.createDataFrame(
        [(0, 0, 1.0, T0), (0, 1, 3.0, T0), (0, 2, 3.0, T0 - dt.timedelta(days=1)), (0, 3, 0.0, T0)],
        INTER_SCHEMA,
    )
    got = sorted(tuple(r)[:3] for r in capped_history(inter, 2).collect())
    assert got == [(0, 1, 3.0), (0, 2, 3.0)]  # highest confidence; impression never counts


@pytest.mark.spark
def test_generate_itemknn(spark: Any, base_conf: Config, tmp_path: Any) -> None:
    inter = spark.createDataFrame(
        [(u, i, 1.0, T0) for u, i in POSITIVE]
        + [(4, 0, 2.0, T0), (5, 2, 0.0, T0)],  # user 4 watched item 0 only; user 5 only saw item 2
        INTER_SCHEMA,
    )
    seen = inter.select(COL_USER_IDX, COL_ITEM_IDX)
    targets = spark.createDataFrame([(u,) for u in range(6)], f"{COL_USER_IDX} int")
    ctx = FitContext(
        spark=spark,
        conf=base_conf.override({"itemknn": {"similarity": "cosine", "shrink": 0.0, "neighbours": 5}}),
        interactions=inter,
        events=inter,
        items=inter,
        users=targets,
        target_users=targets,
        seen=seen,
        n=3,
        work_dir=str(tmp_path),
        run_date="2026-03-31",
    )
    out = generate_itemknn(ctx)
    rows = sorted(tuple(r) for r in out.recs.collect())
    # user 4 now co-watches item 0 too: n_0 = 3, n_1 = 3, co(0, 1) = 2 -> sim 2/3; co(1, 2) = 1 -> 1/sqrt(3)
    assert rows == approx_rows(
        [
            (0, 2, 1 / math.sqrt(3), 1),  # via item 1
            (1, 2, 1 / math.sqrt(3), 1),
            (2, 0, 2 / 3, 1),  # via item 1 (item 2 has no other neighbour)
            (4, 1, 2 * 2 / 3, 1),  # similarity x confidence 2
        ]
    )  # user 3: item 3 has no neighbour; user 5: impressions only -> no list
    assert_candidates(spark, rows, {tuple(r) for r in seen.collect()}, 3)
    assert out.model_version.startswith("itemknn-2026-03-31-")
    assert set(out.artifacts) == {"neighbours", "history"}
    assert out.artifacts["history"].is_cached
    out.release_artifacts()  # the stage's release frees the cached histories too
    assert not out.artifacts["history"].is_cached


@pytest.mark.spark
def test_similar_items_both_algorithms(spark: Any, base_conf: Config, tmp_path: Any) -> None:
    items = spark.createDataFrame(
        [
            (0, "i0", "Scream", ["Horror"], "A haunted cabin."),
            (1, "i1", "Haunt", ["Horror"], "A haunted manor."),
            (2, "i2", "Laughs", ["Comedy"], "A wedding mixup."),
            (3, "i3", "Giggles", ["Comedy"], "Roommates on holiday."),
            (4, "i4", "Fresh Fear", ["Horror"], "A haunted ritual."),  # nobody watched it
            (5, "i5", "Blank", None, None),  # no metadata, no co-watch
        ],
        "item_idx int, item_id string, title string, genres array<string>, description string",
    )
    ctx = FitContext(
        spark=spark,
        conf=base_conf.override({"itemknn": {"shrink": 0.0}, "content": {"dim": 64}}),
        interactions=history(spark),
        events=history(spark),
        items=items,
        users=items,
        target_users=items,
        seen=items,
        n=3,
        work_dir=str(tmp_path),
        run_date="2026-03-31",
    )
    df = similar_items(ctx, 2, dt.date(2026, 3, 31))
    assert df.columns == [f.name for f in SIMILAR_ITEMS_SCHEMA.fields]
    rows = df.collect()
    knn = sorted(
        (r[COL_ITEM], r[COL_RANK], r[COL_SIMILAR_ITEM]) for r in rows if r[COL_ALGORITHM] == "itemknn"
    )
    assert knn == [("i0", 1, "i1"), ("i1", 1, "i0"), ("i1", 2, "i2"), ("i2", 1, "i1")]
    content = {(r[COL_ITEM], r[COL_RANK]): r[COL_SIMILAR_ITEM] for r in rows if r[COL_ALGORITHM] == "content"}
    assert content[("i4", 1)] in ("i0", "i1")  # a new item has content neighbours
    assert content[("i2", 1)] == "i3"
    assert not any(item == "i5" or sim == "i5" for (item, _), sim in content.items())
    for item, algo in {(r[COL_ITEM], r[COL_ALGORITHM]) for r in rows}:
        scores = [r[COL_SCORE] for r in sorted(rows, key=lambda r: r[COL_RANK])
                  if r[COL_ITEM] == item and r[COL_ALGORITHM] == algo]  # fmt: skip
        assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="n must be >= 1"):
        similar_items(ctx, 0, dt.date(2026, 3, 31))
