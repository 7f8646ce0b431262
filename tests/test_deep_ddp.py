"""Two gloo DDP processes through TorchDistributor(local_mode=True, use_gpu=False) on uneven shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from vidrec.models.deep import schema as S
from vidrec.models.deep.train import DIAGNOSTICS_DIR, MODEL_FILE, train_worker

N_USERS, N_ITEMS = 25, 12


def write_unique_pairs(folder: Path, sizes: list[int], offset: int = 0) -> set[tuple[int, int]]:
    """Row groups of the given sizes holding distinct (user, item) pairs."""
    folder.mkdir(parents=True)
    pairs = [(u, i) for u in range(N_USERS) for i in range(N_ITEMS)][offset : offset + sum(sizes)]
    start = 0
    for g, size in enumerate(sizes):
        chunk = np.asarray(pairs[start : start + size], dtype=np.int32)
        table = pa.table(
            {
                S.COL_USER_IDX: chunk[:, 0],
                S.COL_ITEM_IDX: chunk[:, 1],
                S.COL_LABEL: ((chunk[:, 0] + chunk[:, 1]) % 2).astype(np.float32),
            }
        )
        pq.write_table(table, folder / f"part-{g:05d}.parquet")
        start += size
    return set(pairs)


@pytest.mark.spark
@pytest.mark.slow
def test_two_ranks_read_disjoint_shards_covering_all_rows_and_end_with_equal_parameters(
    spark: SparkSession, tmp_path: Path
) -> None:
    from pyspark.ml.torch.distributor import TorchDistributor

    # row groups 0 and 2 go to rank 0 (190 rows), group 1 to rank 1 (60 rows): rank 1 runs out
    # of data steps before rank 0 and must keep stepping with empty batches
    all_pairs = write_unique_pairs(tmp_path / "train", [100, 60, 90])
    write_unique_pairs(tmp_path / "val", [20, 20], offset=250)
    spec: dict[str, Any] = {
        "model": "ncf",
        "model_config": {
            "n_users": N_USERS,
            "n_items": N_ITEMS,
            "embedding_dim": 4,
            "mlp_dim": 4,
            "mlp_layers": [8],
            "dropout": 0.0,
        },
        "train_path": str(tmp_path / "train"),
        "val_path": str(tmp_path / "val"),
        "artifact_dir": str(tmp_path / "art"),
        "batch_size": 32,
        "max_epochs": 3,
        "lr": 0.01,
        "patience": 5,
        "expected_train_rows": 250,
        "expected_val_rows": 40,
        "num_threads": 1,
        "diagnostics": True,
        "diagnostics_key": [S.COL_USER_IDX, S.COL_ITEM_IDX],
    }
    result = TorchDistributor(num_processes=2, local_mode=True, use_gpu=False).run(train_worker, spec)

    assert result["world_size"] == 2 and result["epochs_done"] == 3
    assert len(result["rows_per_s_by_rank"]) == 2 and min(result["rows_per_s_by_rank"]) > 0
    assert (tmp_path / "art" / MODEL_FILE).is_file()
    diag = [json.loads((tmp_path / "art" / DIAGNOSTICS_DIR / f"rank-{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("1", "2", "3"):
        seen = [{tuple(p) for p in d["seen"][epoch]} for d in diag]
        assert len(seen[0]) == 190 and len(seen[1]) == 60, epoch
        assert not seen[0] & seen[1], f"epoch {epoch}: ranks overlap"
        assert seen[0] | seen[1] == all_pairs, f"epoch {epoch}: rows missing"
        assert sum(len(d["seen"][epoch]) for d in diag) == 250, f"epoch {epoch}: a row was read twice"
    assert diag[0]["param_checksum"] == diag[1]["param_checksum"]
    assert "ran out" in (tmp_path / "art" / "logs" / "rank-1.log").read_text()
