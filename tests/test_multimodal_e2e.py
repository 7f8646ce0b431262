"""Multimodal end to end: catalog media embeddings from the raw JSON to the served and similar-item lists.

A small sample whose items carry ``visual_embedding`` and ``audio_embedding`` with a latent taste
factor beyond genre (``media_taste``) goes through ingest, the matrix, the fusion model's Spark
features and Parquet shards, DDP training (2 gloo processes, the TextCNN item tower) and scoring to
``gold/recommendations``, and through the content vectors to ``gold/similar_items``. Kept small
(evaluate is skipped: the other end-to-end test covers it).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec import pipeline
from vidrec.data import contracts, tables
from vidrec.devdata import sample

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.extended]

RUN_DATE = dt.date(2026, 3, 31)
MODELS = [C.ALGO_POPULARITY, C.ALGO_CONTENT, C.ALGO_FUSION, C.ALGO_HYBRID]
EMBEDDINGS = (C.COL_VISUAL_EMB, C.COL_AUDIO_EMB)


@pytest.fixture(scope="module")
def run(spark, base_conf, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("multimodal")
    raw = root / "raw"
    sample.generate(
        spark, str(raw), n_users=120, n_items=60, days=21, end_date=RUN_DATE, seed=11, media_taste=1.0
    )
    keep = {C.ALGO_POPULARITY: 0.25, C.ALGO_CONTENT: 0.5, C.ALGO_FUSION: 1.0}
    weights = {k: keep.get(k, 0.0) for k in base_conf.hybrid.weights}
    cold = {k: keep.get(k, 0.0) if k != C.ALGO_FUSION else 0.0 for k in base_conf.hybrid.cold_weights}
    conf = base_conf.override(
        {
            "warehouse": str(root / "warehouse"),
            "models": MODELS,
            "hybrid": {"weights": weights, "cold_weights": cold},
            "deep": {"fusion": {"encoder": "cnn", "max_epochs": 3, "max_text_len": 32}},
        }
    )
    stages = [s for s in pipeline.STAGE_NAMES if s not in ("evaluate", "analytics")]
    summary = pipeline.run_nightly(spark, conf, RUN_DATE, str(raw), stages=stages)
    return {"conf": conf, "raw": raw, "root": root, "summary": summary}


def test_the_raw_catalog_carries_both_embeddings(run) -> None:
    items = [json.loads(line) for line in (run["raw"] / sample.ITEMS_FILE).read_text().splitlines()]
    with_media = [i for i in items if i[C.COL_VISUAL_EMB] is not None]
    assert len(with_media) >= 0.8 * len(items)
    assert {len(i[c]) for i in with_media for c in EMBEDDINGS} == {sample.EMBEDDING_DIM}


def test_ingest_keeps_the_embeddings_in_silver_items(spark, run) -> None:
    items = tables.read(spark, run["conf"].warehouse, C.T_ITEMS)
    n = items.where(F.size(C.COL_VISUAL_EMB) == sample.EMBEDDING_DIM).count()
    assert (
        n >= 0.8 * items.count() and items.where(F.size(C.COL_AUDIO_EMB) == sample.EMBEDDING_DIM).count() == n
    )


def test_the_fusion_shards_and_model_carry_the_media(run) -> None:
    side = Path(run["conf"].warehouse) / "features" / C.ALGO_FUSION / f"run_date={RUN_DATE}" / "items"
    table = pq.read_table(side).to_pydict()
    for col in EMBEDDINGS:
        vectors = table[col]
        assert len(vectors) >= 50 and all(len(v) == sample.EMBEDDING_DIM for v in vectors)
        assert sum(any(x != 0 for x in v) for v in vectors) >= 0.8 * len(vectors)  # zeros where none
    assert any(any(t) for t in table["text"])  # the TextCNN's title + description tokens
    specs = list(Path(run["root"]).rglob("fusion/spec.json"))
    assert specs, "fit writes the training spec next to the model"
    config = json.loads(specs[0].read_text())["model_config"]
    assert (config["visual_dim"], config["audio_dim"], config["encoder"]) == (16, 16, "cnn")


def test_fusion_and_hybrid_lists_reach_gold_recommendations(spark, run) -> None:
    gold = tables.read(spark, run["conf"].warehouse, C.T_RECOMMENDATIONS).where(
        F.col(C.COL_RUN_DATE) == F.lit(RUN_DATE)
    )
    contracts.check_recommendations(gold, None, run["conf"].recommend.top_n)
    served = {r[0]: r[1] for r in gold.groupBy(C.COL_ALGORITHM).agg(F.countDistinct(C.COL_USER)).collect()}
    assert served.get(C.ALGO_FUSION, 0) > 20 and served.get(C.ALGO_HYBRID, 0) > 20, served


def test_content_similar_items_use_the_embeddings(spark, run) -> None:
    similar = tables.read(spark, run["conf"].warehouse, C.T_SIMILAR_ITEMS).where(
        (F.col(C.COL_RUN_DATE) == F.lit(RUN_DATE)) & (F.col(C.COL_ALGORITHM) == C.ALGO_CONTENT)
    )
    assert similar.select(C.COL_ITEM).distinct().count() >= 50
