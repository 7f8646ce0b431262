"""End to end: a deep generator fits through TorchDistributor (2 processes) and returns valid lists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_candidates
from pyspark.sql import SparkSession

from vidrec import constants as C
from vidrec.config import load_config
from vidrec.models import registry
from vidrec.models.base import FitContext
from vidrec.models.deep import schema as S
from vidrec.models.deep.generators import USER_EMBEDDINGS

N_USERS, N_ITEMS, COLD = 40, 24, (22, 23)
GENRES = ("Drama", "Comedy", "Action")
RUN_DATE = "2026-03-31"


def tiny_context(spark: SparkSession, tmp_path: Path, deep: dict[str, Any]) -> FitContext:
    """Users like the items of one genre; items 22 and 23 have no interactions at all."""
    t0 = dt.datetime(2026, 3, 1)
    rows = []
    for u in range(N_USERS):
        genre = u % 3
        liked = [i for i in range(22) if i % 3 == genre]
        for k, i in enumerate(liked[(u // 3) % 3 :]):
            first = t0 + dt.timedelta(hours=u + 5 * k)
            rows.append((u, i, 1.0 + (k % 2), first, first + dt.timedelta(minutes=30)))
    interactions = spark.createDataFrame(
        rows,
        f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int, {C.COL_CONFIDENCE} double, "
        f"{C.COL_FIRST_TS} timestamp, {C.COL_LAST_TS} timestamp",
    )
    items = spark.createDataFrame(
        [
            (f"i{i}", i, f"Title {GENRES[i % 3]} {i}", [GENRES[i % 3]], [f"dir{i % 3}"], [], 2000 + i, "en")
            for i in range(N_ITEMS)
        ],
        f"{C.COL_ITEM} string, {C.COL_ITEM_IDX} int, {C.COL_TITLE} string, {C.COL_GENRES} array<string>, "
        f"{C.COL_DIRECTORS} array<string>, {C.COL_CAST} array<string>, "
        f"{C.COL_RELEASE_YEAR} int, {C.COL_LANGUAGE} string",
    )
    seen = interactions.where(interactions[C.COL_CONFIDENCE] > 1.5).select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    targets = spark.createDataFrame(
        [(u,) for u in range(N_USERS + 5)], f"{C.COL_USER_IDX} int"
    )  # 5 unknown users
    warehouse = str(tmp_path / "warehouse")
    return FitContext(
        spark=spark,
        conf=load_config(overrides={"warehouse": warehouse, "deep": deep}),
        interactions=interactions,
        events=interactions,
        items=items,
        users=targets,
        target_users=targets,
        seen=seen,
        n=5,
        work_dir=f"{warehouse}/models/{RUN_DATE}",
        run_date=RUN_DATE,
    )


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize(
    ("model_name", "section"),
    [
        (
            "fusion",
            {
                "embedding_dim": 8,
                "num_buckets": 256,
                "max_tokens": 8,
                "num_negatives": 8,
                "batch_size": 64,
                "max_epochs": 2,
            },
        ),
        ("multvae", {"hidden_dim": 16, "latent_dim": 4, "batch_size": 8, "max_epochs": 2}),
    ],
)
def test_deep_generator_fits_with_ddp_and_returns_valid_lists(
    spark: SparkSession, tmp_path: Path, model_name: str, section: dict[str, Any]
) -> None:
    deep = {
        "launch": {"num_processes": 2, "rows_per_row_group": 64, "num_threads": 1},
        "train": {"val_fraction": 0.25},
        model_name: section,
    }
    ctx = tiny_context(spark, tmp_path, deep)
    cand = registry.get(model_name)(ctx)

    assert cand.model_version.startswith(f"{model_name}-{RUN_DATE}-")
    recs = [tuple(r) for r in cand.recs.collect()]
    seen = {(r[0], r[1]) for r in ctx.seen.collect()}
    users: dict[int, list[tuple[int, int, float, int]]] = {}
    for r in recs:
        users.setdefault(r[0], []).append(r)
    assert set(users) == set(range(N_USERS))  # every user with history; unknown users get none here
    for user, rows in users.items():
        rows.sort(key=lambda r: r[3])
        assert [r[3] for r in rows] == [1, 2, 3, 4, 5]
        assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
        assert len({r[1] for r in rows}) == 5 and not {(user, r[1]) for r in rows} & seen
    assert_candidates(spark, cand.recs, ctx.seen, ctx.n)  # the library contract, as before a gold write
    recommended = {r[1] for r in recs}
    if model_name == "multvae":  # id-based: only items it trained on
        assert not recommended & set(COLD)
        emb = cand.artifacts[USER_EMBEDDINGS]
        assert emb.columns == [C.COL_USER_IDX, S.COL_EMBEDDING]
        assert emb.count() == N_USERS
    assert recommended <= set(range(N_ITEMS))
    art = Path(ctx.work_dir) / model_name
    assert (art / "model.pt").is_file() and (art / "spec.json").is_file()
    shard_root = Path(ctx.conf.warehouse) / "features" / model_name / f"run_date={RUN_DATE}"
    assert (shard_root / S.TRAIN).is_dir() and (shard_root / S.VAL).is_dir()
