"""EASE: the closed form against a dense numpy reference, the Gram matrix, the generator.

The reference is Steck's formula computed directly with numpy on a 6-user × 5-item binary matrix:
``P = inv(XᵀX + λI)``, ``B = I − P · diag(1/diag(P))``, scores ``X · B``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from helpers import assert_candidates

from vidrec.config import Config
from vidrec.constants import COL_CONFIDENCE, COL_ITEM_IDX, COL_RANK, COL_SCORE, COL_USER_IDX
from vidrec.models import itemknn
from vidrec.models.base import FitContext
from vidrec.models.ease import (
    CANDIDATES_SCHEMA,
    check_catalog_size,
    ease_weights,
    generate_ease,
    gram_from_pairs,
    resolve_device,
    top_n_block,
)

X = np.array(
    [
        [1, 1, 0, 0, 1],
        [0, 1, 1, 0, 0],
        [1, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
        [1, 1, 1, 0, 0],
        [0, 1, 0, 1, 1],
    ],
    dtype=np.float64,
)


def reference_weights(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck (2019), eq. 8, written as in the paper."""
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))


def _rows(x: np.ndarray) -> list[tuple[int, int]]:
    return [(int(u), int(i)) for u, i in zip(*np.nonzero(x), strict=True)]


@pytest.mark.parametrize("lam", [0.5, 2.0, 250.0])
def test_ease_weights_match_the_formula(lam: float) -> None:
    b = ease_weights(X.T @ X, lam, device="cpu")
    np.testing.assert_allclose(b, reference_weights(X, lam), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.diag(b), np.zeros(5))


@pytest.mark.parametrize(
    ("gram", "lam", "message"),
    [
        (np.zeros((2, 3)), 1.0, r"square matrix, got shape \(2, 3\)"),
        (np.zeros(4), 1.0, r"square matrix, got shape \(4,\)"),
        (np.eye(3), 0.0, "lambda must be > 0, got 0.0"),
        (np.eye(3), -1.0, "lambda must be > 0"),
    ],
)
def test_ease_weights_refuse_bad_input(gram: np.ndarray, lam: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ease_weights(gram, lam, device="cpu")


def test_catalog_limit_names_the_key_and_the_memory() -> None:
    check_catalog_size(50_000, 50_000)
    with pytest.raises(ValueError, match=r"60000 items exceeds ease\.max_items=50000 .*= 86\.4 GB"):
        check_catalog_size(60_000, 50_000)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ease_weights_on_cuda_match_cpu() -> None:
    gram = X.T @ X
    np.testing.assert_allclose(ease_weights(gram, 2.0, "cuda"), ease_weights(gram, 2.0, "cpu"), atol=1e-10)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (2, [(0, 2, 1.0, 1), (0, 0, 0.0, 2), (1, 0, 3.0, 1), (1, 1, 3.0, 2), (2, 1, 0.0, 1), (2, 2, 0.0, 2)]),
        # n past the catalog: every allowed column, excluded ones left out
        (
            5,
            [
                (0, 2, 1.0, 1),
                (0, 0, 0.0, 2),
                (1, 0, 3.0, 1),
                (1, 1, 3.0, 2),
                (1, 2, 3.0, 3),
                (2, 1, 0.0, 1),
                (2, 2, 0.0, 2),
            ],
        ),
    ],
)
def test_top_n_block(n: int, expected: list[tuple[int, int, float, int]]) -> None:
    weights = np.array([[0.0, 2.0, 1.0], [2.0, 0.0, 3.0], [1.0, 3.0, 0.0]])
    rows, cols, scores, ranks = top_n_block([[0], [1, 2], []], [[1], None, [0]], weights, n)
    got = [(int(r), int(c), float(s), int(k)) for r, c, s, k in zip(rows, cols, scores, ranks, strict=True)]
    assert got == expected


def test_gram_from_pairs_is_xtx_in_any_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((40, 30)) < 0.25).astype(np.float64)
    dense[:, 7] = 0.0  # an item nobody has: no column
    users, items = np.nonzero(dense)
    item_ids = items * 3 + 11  # sparse, non-contiguous item indexes
    expected_items = np.flatnonzero(dense.sum(0) > 0)
    order = rng.permutation(len(users))  # pairs in no particular order
    for cells in (None, 30, 60, 10_000):
        if cells is not None:
            monkeypatch.setattr(itemknn, "BLOCK_CELLS", cells)
        cols, gram = gram_from_pairs(users[order], item_ids[order])
        np.testing.assert_array_equal(cols, expected_items * 3 + 11)
        sub = dense[:, expected_items]
        np.testing.assert_array_equal(gram, sub.T @ sub)
        assert gram.dtype == np.float64
    cols, gram = gram_from_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert cols.shape == (0,) and gram.shape == (0, 0)
    with pytest.raises(ValueError, match=r"29 items exceeds ease\.max_items=28"):
        gram_from_pairs(users, item_ids, max_items=28)


@pytest.mark.spark
def test_generate_ease_matches_the_reference(spark: Any, base_conf: Config, tmp_path: Any) -> None:
    lam, n = 2.0, 3
    item_ids = np.array([10, 20, 30, 40, 50])  # item_idx are not column numbers
    schema = f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_CONFIDENCE} double"
    positives = [(u, int(item_ids[i]), 1.0) for u, i in _rows(X)]
    # user 1 disliked item 10 (confidence 0): not in X, but seen, so never recommended to user 1;
    # user 6 has only that kind of interaction: no history, no list.
    interactions = spark.createDataFrame([*positives, (1, 10, 0.0), (6, 20, 0.0)], schema)
    seen = interactions.select(COL_USER_IDX, COL_ITEM_IDX)
    targets = spark.createDataFrame([(u,) for u in (0, 1, 2, 3, 4, 6)], f"{COL_USER_IDX} int")  # not 5
    ctx = FitContext(
        spark=spark,
        conf=base_conf.override({"ease": {"lambda": lam}, "recommend": {"user_block_size": 2}}),
        interactions=interactions,
        events=interactions,
        items=interactions,
        users=interactions,
        target_users=targets,
        seen=seen,
        n=n,
        work_dir=str(tmp_path),
        run_date="2026-03-31",
    )
    out = generate_ease(ctx)
    assert out.model_version == "ease-2026-03-31-lambda2"
    assert out.recs.schema == CANDIDATES_SCHEMA
    got = sorted(tuple(r) for r in out.recs.collect())

    scores = X @ reference_weights(X, lam)
    scores[X > 0] = -np.inf
    scores[1, 0] = -np.inf
    expected = []
    for u in (0, 1, 2, 3, 4):
        allowed = [c for c in range(5) if np.isfinite(scores[u, c])]
        order = sorted(allowed, key=lambda c: (-scores[u, c], c))[:n]
        expected += [(u, int(item_ids[c]), float(scores[u, c]), k) for k, c in enumerate(order, start=1)]
    assert [(u, i, k) for u, i, _, k in got] == [(u, i, k) for u, i, _, k in sorted(expected)]
    np.testing.assert_allclose([s for *_, s, _ in got], [s for *_, s, _ in sorted(expected)], rtol=1e-5)
    assert_candidates(spark, out.recs, seen, n)  # the contract of every generator
    assert {COL_USER_IDX, COL_ITEM_IDX, COL_SCORE, COL_RANK} == set(out.recs.columns)
