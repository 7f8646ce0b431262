"""Batch scoring in Spark: the candidate-list contract and the user-embedding export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import assert_candidates
from pyspark.sql import DataFrame, SparkSession

from vidrec import constants as C
from vidrec.models.deep import schema as S
from vidrec.models.deep.networks import build_model
from vidrec.models.deep.score import embed_users, score_users

N_USERS, N_ITEMS = 6, 10


def save(model_name: str, config: dict, path: Path) -> torch.nn.Module:
    torch.manual_seed(1)
    model = build_model(model_name, config).eval()
    torch.save({"model": model_name, "config": model.config, "state_dict": model.state_dict()}, path)
    return model


def pairs(spark: SparkSession, rows: list[tuple[int, int]]) -> DataFrame:
    return spark.createDataFrame(rows, f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int")


@pytest.mark.spark
def test_ncf_scoring_keeps_the_contract_and_matches_the_model(spark: SparkSession, tmp_path: Path) -> None:
    config = {
        "n_users": N_USERS,
        "n_items": N_ITEMS,
        "embedding_dim": 4,
        "mlp_dim": 4,
        "mlp_layers": [8],
        "dropout": 0.0,
    }
    model = save("ncf", config, tmp_path / "model.pt")
    seen_rows = [(0, 1), (0, 2), (1, 9), (3, 0), (3, 1), (3, 2), (3, 3), (3, 4), (3, 5), (3, 6), (3, 7)]
    users = spark.createDataFrame([(u,) for u in range(5)], f"{C.COL_USER_IDX} int")
    cands = spark.createDataFrame(
        [(i,) for i in range(9)] + [(42,)], f"{C.COL_ITEM_IDX} int"
    )  # 9 is no candidate
    recs_df = score_users(
        spark, str(tmp_path / "model.pt"), users, pairs(spark, seen_rows), 4, cands, block_size=2
    )
    assert recs_df.dtypes == [
        (C.COL_USER_IDX, "int"),
        (C.COL_ITEM_IDX, "int"),
        (C.COL_SCORE, "double"),
        (C.COL_RANK, "int"),
    ]
    recs = [tuple(r) for r in recs_df.collect()]
    assert_candidates(spark, recs, set(seen_rows), 4)
    assert {r[0] for r in recs} == {0, 1, 2, 3, 4}
    assert {r[1] for r in recs} <= set(range(9))
    assert sorted(r[1] for r in recs if r[0] == 3) == [8]  # only one unseen candidate left
    with torch.no_grad():
        expected = model.score({S.COL_USER_IDX: torch.tensor([2])})[0, :9]
    top = torch.topk(expected, 4)
    got = sorted((r for r in recs if r[0] == 2), key=lambda r: r[3])
    assert [r[1] for r in got] == top.indices.tolist()
    assert [r[2] for r in got] == pytest.approx(top.values.double().tolist(), rel=1e-5)


@pytest.mark.spark
def test_multvae_scores_from_bags_and_exports_user_embeddings(spark: SparkSession, tmp_path: Path) -> None:
    config = {
        "n_items": N_ITEMS,
        "hidden_dim": 8,
        "latent_dim": 3,
        "dropout": 0.5,
        "beta_max": 0.2,
        "anneal_steps": 10,
    }
    save("multvae", config, tmp_path / "model.pt")
    users = spark.createDataFrame(
        [(0, [1, 2, -1]), (1, [3, -1, -1]), (2, [0, 5, 6])], f"{C.COL_USER_IDX} int, {S.COL_BAG} array<int>"
    )
    seen_rows = [(0, 1), (0, 2), (1, 3), (2, 0), (2, 5), (2, 6)]
    recs = [
        tuple(r)
        for r in score_users(spark, str(tmp_path / "model.pt"), users, pairs(spark, seen_rows), 3).collect()
    ]
    assert_candidates(spark, recs, set(seen_rows), 3)
    assert sorted({r[0] for r in recs}) == [0, 1, 2] and len(recs) == 9
    emb = embed_users(spark, str(tmp_path / "model.pt"), users)
    assert emb.dtypes == [(C.COL_USER_IDX, "int"), (S.COL_EMBEDDING, "array<float>")]
    rows = sorted((r[0], len(r[1])) for r in emb.collect())
    assert rows == [(0, 3), (1, 3), (2, 3)]


@pytest.mark.spark
def test_scoring_refuses_users_without_the_model_features(spark: SparkSession, tmp_path: Path) -> None:
    config = {
        "n_items": N_ITEMS,
        "hidden_dim": 8,
        "latent_dim": 3,
        "dropout": 0.5,
        "beta_max": 0.2,
        "anneal_steps": 10,
    }
    save("multvae", config, tmp_path / "model.pt")
    users = spark.createDataFrame([(0,)], f"{C.COL_USER_IDX} int")
    with pytest.raises(ValueError, match="lacks column"):
        score_users(spark, str(tmp_path / "model.pt"), users, pairs(spark, []), 3)
    with pytest.raises(ValueError, match="n must be >= 1"):
        score_users(spark, str(tmp_path / "model.pt"), users, pairs(spark, []), 0)
