"""vidrec.models.topn: the blocked top-N equals a brute-force reference, on both seen paths."""

from __future__ import annotations

import numpy as np
import pytest

from vidrec.models import topn
from vidrec.models.topn import SeenIndex, block_rows, scoring_device, top_n_from_factors

N_USERS, N_ITEMS, RANK, N = 23, 17, 4, 5


def brute_force(uf: np.ndarray, vf: np.ndarray, item_ids: np.ndarray, seen: set, n: int) -> list[tuple]:
    """Every (user, item, score, rank) by sorting each user's full score row in float64."""
    rows = []
    for u in range(len(uf)):
        scores = vf.astype(np.float64) @ uf[u].astype(np.float64)
        order = [j for j in np.argsort(-scores, kind="stable") if (u, int(item_ids[j])) not in seen][:n]
        rows += [(u, int(item_ids[j]), r + 1) for r, j in enumerate(order)]
    return rows


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(7)
    uf = rng.normal(size=(N_USERS, RANK)).astype(np.float32)
    vf = rng.normal(size=(N_ITEMS, RANK)).astype(np.float32)
    item_ids = np.arange(100, 100 + 2 * N_ITEMS, 2)  # sparse, sorted ids
    seen = {(u, int(i)) for u in range(N_USERS) for i in rng.choice(item_ids, size=u % 6, replace=False)}
    seen |= {(3, int(i)) for i in item_ids[:-2]}  # user 3 has seen all but two items: a short list
    seen |= {(4, 999)}  # an item that has no factors is ignored
    return uf, vf, item_ids, seen


@pytest.mark.spark
@pytest.mark.parametrize("max_pairs", [10**6, 0], ids=["broadcast", "join"])
@pytest.mark.parametrize("block_size", [4, 2048])
def test_top_n_equals_brute_force(spark, case, max_pairs, block_size):
    uf, vf, item_ids, seen = case
    users = spark.createDataFrame(
        [(u, uf[u].tolist()) for u in range(N_USERS)], "user_idx int, features array<float>"
    )
    items = spark.createDataFrame(
        [(int(i), vf[j].tolist()) for j, i in enumerate(item_ids)], "item_idx int, features array<float>"
    )
    seen_df = spark.createDataFrame(sorted(seen), "user_idx int, item_idx int")
    got = top_n_from_factors(
        spark, users, items, seen_df, N, block_size=block_size, seen_broadcast_max_pairs=max_pairs
    ).collect()
    want = brute_force(uf, vf, item_ids, seen, N)
    assert sorted((r.user_idx, r.item_idx, r.rank) for r in got) == sorted(want)
    by_user: dict[int, list] = {}
    for r in got:
        by_user.setdefault(r.user_idx, []).append((r.rank, r.score))
    assert len(by_user[3]) == sum(1 for w in want if w[0] == 3) <= 2  # at most two unseen items left
    for u, lst in by_user.items():
        scores = [s for _, s in sorted(lst)]
        assert scores == sorted(scores, reverse=True)
        expect = [float(vf[(int(i) - 100) // 2] @ uf[u]) for (uu, i, _) in want if uu == u]
        assert np.allclose(sorted(scores, reverse=True), sorted(expect, reverse=True), rtol=1e-5, atol=1e-5)


def test_score_block_masks_and_orders():
    uf = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    vf = np.array([[3.0, 0.0], [2.0, 1.0], [0.0, 5.0]], np.float32)
    ids = np.array([10, 20, 30])
    items, scores = topn.score_block(uf, np.array([0, 1]), np.array([10, 99]), vf, ids, 2)
    assert items.tolist() == [[20, 30], [30, 20]]
    assert scores.tolist() == [[2.0, 0.0], [5.0, 1.0]]


def test_seen_index_lookup():
    index = SeenIndex.build(
        np.array([5, 2, 5, 9, 2]), np.array([30, 10, 20, 40, 77]), np.array([10, 20, 30, 40])
    )
    assert index.users.tolist() == [2, 5, 9]  # item 77 has no column: dropped
    rows, cols = index.lookup(np.array([9, 1, 5, 2]))
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 3), (2, 1), (2, 2), (3, 0)]
    empty = SeenIndex.build(np.zeros(0), np.zeros(0), np.array([1, 2]))
    assert [a.tolist() for a in empty.lookup(np.array([1]))] == [[], []]


def test_block_rows_fit_the_catalog():
    assert block_rows(4000, 2048, "cpu") == 250
    assert block_rows(27000, 2048, "cpu") == 37
    assert block_rows(27000, 2048, "cpu", cpu_floats=6_000_000) == 222
    assert block_rows(100, 2048, "cpu") == 2048
    assert block_rows(10**9, 2048, "cpu") == 32
    assert block_rows(27000, 2048, "cuda:0") == (1 << 28) // 27000


def test_scoring_device(monkeypatch):
    import torch

    assert scoring_device(False, ["0"]) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        scoring_device(True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert scoring_device(True, ["1", "2"]) == "cuda:1"
    assert scoring_device(True, None) == "cuda"


def test_bad_arguments(spark):
    users = spark.createDataFrame([(0, [1.0])], "user_idx int, features array<float>")
    with pytest.raises(ValueError, match="n must be"):
        top_n_from_factors(spark, users, users.withColumnRenamed("user_idx", "item_idx"), users, 0)
    with pytest.raises(ValueError, match="lacks column"):
        top_n_from_factors(spark, users, users, users, 3)
