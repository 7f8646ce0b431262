"""The loader seam: every epoch yields every row exactly once across ranks, from disjoint shards.

Every guarantee is checked for both readers (``pyarrow``, the default, and ``petastorm``)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from vidrec.models.deep import loader
from vidrec.models.deep import schema as S


def write_groups(folder: Path, sizes: list[int], seq_len: int = 3) -> int:
    """One Parquet file (one row group) per size; ``user_idx`` numbers the rows 0..N-1."""
    folder.mkdir(parents=True)
    start = 0
    for g, size in enumerate(sizes):
        ids = np.arange(start, start + size, dtype=np.int32)
        seq = pa.array([[int(i)] * seq_len for i in ids], type=pa.list_(pa.int32()))
        table = pa.table({S.COL_USER_IDX: ids, S.COL_SEQ: seq, S.COL_LABEL: (ids % 2).astype(np.float32)})
        pq.write_table(table, folder / f"part-{g:05d}.parquet")
        start += size
    return start


@pytest.fixture(params=loader.READERS)
def reader(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def read_epoch(
    path: Path, rank: int, world: int, epoch: int, batch_size: int = 16, **kw: object
) -> list[int]:
    ids: list[int] = []
    for batch in loader.iter_batches(
        str(path), rank, world, batch_size, epoch, [S.COL_USER_IDX, S.COL_SEQ], seed=3, **kw
    ):
        assert batch[S.COL_USER_IDX].dtype == torch.int32
        assert batch[S.COL_SEQ].shape == (len(batch[S.COL_USER_IDX]), 3)
        assert torch.equal(batch[S.COL_SEQ][:, 0], batch[S.COL_USER_IDX])  # rows stay whole
        assert len(batch[S.COL_USER_IDX]) <= batch_size
        ids.extend(batch[S.COL_USER_IDX].tolist())
    return ids


@pytest.mark.parametrize("shuffle_buffer", [0, 64])
def test_every_epoch_yields_every_row_exactly_once_across_two_ranks(
    tmp_path: Path, shuffle_buffer: int, reader: str
) -> None:
    n = write_groups(tmp_path / "ds", [40, 37, 41, 30, 39, 35])
    orders = []
    for epoch in range(6):
        per_rank = [
            read_epoch(tmp_path / "ds", r, 2, epoch, shuffle_buffer=shuffle_buffer, reader=reader)
            for r in range(2)
        ]
        assert all(per_rank), f"epoch {epoch}: a rank read nothing"
        assert not set(per_rank[0]) & set(per_rank[1]), f"epoch {epoch}: shards overlap"
        counts = Counter(per_rank[0] + per_rank[1])
        assert sorted(counts) == list(range(n)) and set(counts.values()) == {1}, f"epoch {epoch}"
        orders.append(per_rank[0])
    assert len({tuple(o) for o in orders}) > 1  # shuffled differently per epoch
    assert all(set(o) == set(orders[0]) for o in orders)  # the same rows per rank every epoch


def test_the_same_epoch_reads_in_the_same_order(tmp_path: Path, reader: str) -> None:
    write_groups(tmp_path / "ds", [20, 20, 20, 20])
    first = read_epoch(tmp_path / "ds", 1, 2, 4, reader=reader)
    assert first == read_epoch(tmp_path / "ds", 1, 2, 4, reader=reader)
    assert first != sorted(first)  # shuffled, rows within a group too


def test_unshuffled_reads_follow_the_files(tmp_path: Path, reader: str) -> None:
    write_groups(tmp_path / "ds", [5, 5])
    assert read_epoch(tmp_path / "ds", 0, 1, 0, shuffle=False, reader=reader) == list(range(10))


def test_a_single_process_reads_everything(tmp_path: Path, reader: str) -> None:
    n = write_groups(tmp_path / "ds", [7, 9, 8])
    assert sorted(read_epoch(tmp_path / "ds", 0, 1, 0, reader=reader)) == list(range(n))


def test_batches_are_full_but_the_last(tmp_path: Path, reader: str) -> None:
    write_groups(tmp_path / "ds", [7, 9, 8])
    sizes = [
        len(b[S.COL_USER_IDX])
        for b in loader.iter_batches(str(tmp_path / "ds"), 0, 1, 5, 0, [S.COL_USER_IDX], reader=reader)
    ]
    assert sizes == [5, 5, 5, 5, 4]


def test_fewer_row_groups_than_ranks_fails_loudly(tmp_path: Path, reader: str) -> None:
    write_groups(tmp_path / "ds", [10])
    if reader == "petastorm":
        from petastorm.errors import NoDataAvailableError

        with pytest.raises(NoDataAvailableError):
            read_epoch(tmp_path / "ds", 1, 2, 0, reader=reader)
    else:
        with pytest.raises(ValueError, match="none for rank 1 of 2"):
            read_epoch(tmp_path / "ds", 1, 2, 0, reader=reader)


def test_an_unknown_reader_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loader must be one of pyarrow, petastorm, got 'dali'"):
        next(loader.iter_batches(str(tmp_path), 0, 1, 8, 0, [S.COL_USER_IDX], reader="dali"))


def test_invalid_rank_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rank 2"):
        next(loader.iter_batches(str(tmp_path), 2, 2, 8, 0, [S.COL_USER_IDX]))


def test_peek_batch_matches_the_loader_and_empty_like_keeps_shapes(tmp_path: Path) -> None:
    write_groups(tmp_path / "ds", [4, 4])
    peek = loader.peek_batch(str(tmp_path / "ds"), [S.COL_USER_IDX, S.COL_SEQ, S.COL_LABEL], rows=2)
    assert peek[S.COL_USER_IDX].tolist() == [0, 1]
    assert peek[S.COL_SEQ].dtype == torch.int32 and peek[S.COL_SEQ].shape == (2, 3)
    assert peek[S.COL_LABEL].dtype == torch.float32
    empty = loader.empty_like(peek)
    assert empty[S.COL_SEQ].shape == (0, 3) and empty[S.COL_USER_IDX].shape == (0,)


def test_read_table_reads_a_whole_side_table(tmp_path: Path) -> None:
    write_groups(tmp_path / "ds", [3, 4])
    table = loader.read_table(str(tmp_path / "ds"), [S.COL_USER_IDX, S.COL_SEQ])
    assert sorted(table[S.COL_USER_IDX].tolist()) == list(range(7))
    assert table[S.COL_SEQ].shape == (7, 3)


def test_dataset_url_keeps_partition_style_names_readable(tmp_path: Path) -> None:
    url = loader.dataset_url(str(tmp_path / "run_date=2026-03-31"))
    assert url.startswith("file:///") and url.endswith("run_date=2026-03-31")
    assert loader.dataset_url("s3://bucket/x") == "s3://bucket/x"


def test_a_petastorm_epoch_logs_no_per_reader_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # plain Parquet shards make Petastorm log two INFO lines per reader opened (per rank, per epoch)
    write_groups(tmp_path / "ds", [4, 4])
    with caplog.at_level(logging.INFO):
        read_epoch(tmp_path / "ds", 0, 1, 0, reader="petastorm")
    chatty = [r for r in caplog.records if r.name.startswith("petastorm")]
    assert chatty == [], [r.getMessage() for r in chatty]
