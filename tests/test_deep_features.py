"""Feature transforms on tiny DataFrames (expected rows inline), shard writing and retention."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession

from vidrec import constants as C
from vidrec.models.deep import features, shards
from vidrec.models.deep import schema as S

T0 = dt.datetime(2026, 3, 1)


def ts(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def interactions(spark: SparkSession, rows: list[tuple[int, int, float, int]]) -> DataFrame:
    """``(user_idx, item_idx, confidence, minute of first_ts)``; last_ts = first_ts + 1 minute."""
    data = [(u, i, c, ts(m), ts(m + 1)) for u, i, c, m in rows]
    schema = (
        f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int, {C.COL_CONFIDENCE} double, "
        f"{C.COL_FIRST_TS} timestamp, {C.COL_LAST_TS} timestamp"
    )
    return spark.createDataFrame(data, schema)


def catalog(spark: SparkSession, with_media: bool = True) -> DataFrame:
    rows = [
        (
            0,
            "Big Heist",
            "A crew plans a heist.",
            ["Action", "Thriller"],
            ["Ann Lee"],
            ["Bo Ray"],
            1999,
            "en",
            "PG",
            [1.0, 2.0],
        ),
        (1, "Quiet Love", None, ["Romance"], [], None, 2012, "fr", None, None),
        (2, None, None, None, None, None, None, None, None, [1.0]),
    ]
    schema = (
        f"{C.COL_ITEM_IDX} int, {C.COL_TITLE} string, {C.COL_DESCRIPTION} string, "
        f"{C.COL_GENRES} array<string>, "
        f"{C.COL_DIRECTORS} array<string>, {C.COL_CAST} array<string>, {C.COL_RELEASE_YEAR} int, "
        f"{C.COL_LANGUAGE} string, {C.COL_MATURITY} string, {C.COL_VISUAL_EMB} array<float>"
    )
    df = spark.createDataFrame(rows, schema)
    return df if with_media else df.drop(C.COL_VISUAL_EMB)


@pytest.mark.spark
def test_positives_keep_only_positive_confidence(spark: SparkSession) -> None:
    df = interactions(spark, [(0, 1, 2.0, 0), (0, 2, 0.0, 1), (1, 1, 0.5, 2)])
    got = sorted((r[0], r[1]) for r in features.positives(df).collect())
    assert got == [(0, 1), (1, 1)]


@pytest.mark.spark
def test_ncf_negatives_are_never_positives_and_unique(spark: SparkSession) -> None:
    rows = [(u, i, 1.0, i) for u in range(4) for i in range(0, 10, 1 + u)]
    pos = features.positives(interactions(spark, rows)).select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    cands = spark.createDataFrame([(i,) for i in range(12)], f"{C.COL_ITEM_IDX} int")
    ex = features.ncf_examples(pos, pos, cands, 4, seed=7)
    assert ex.dtypes == [(C.COL_USER_IDX, "int"), (C.COL_ITEM_IDX, "int"), (S.COL_LABEL, "float")]
    got = [(r[0], r[1], r[2]) for r in ex.collect()]
    positives = {(u, i) for u, i, _, _ in rows}
    assert {(u, i) for u, i, lab in got if lab == 1.0} == positives
    negatives = [(u, i) for u, i, lab in got if lab == 0.0]
    assert negatives and not set(negatives) & positives
    assert len(negatives) == len(set(negatives))
    assert all(0 <= i < 12 for _, i in negatives)
    assert len(negatives) <= 4 * len(positives)
    again = sorted((r[0], r[1], r[2]) for r in features.ncf_examples(pos, pos, cands, 4, seed=7).collect())
    assert again == sorted(got)  # hash-based draws: deterministic


@pytest.mark.spark
def test_user_sequences_are_time_ordered_truncated_and_left_padded(spark: SparkSession) -> None:
    df = interactions(
        spark, [(0, 5, 1.0, 30), (0, 3, 1.0, 10), (0, 9, 1.0, 20), (0, 4, 0.0, 15), (1, 7, 1.0, 0)]
    )
    pos = features.positives(df)
    got = sorted((r[0], r[1], r[2]) for r in features.user_sequences(pos, 4).collect())
    assert got == [(0, [-1, 3, 9, 5], 3), (1, [-1, -1, -1, 7], 1)]
    got = sorted((r[0], r[1], r[2]) for r in features.user_sequences(pos, 2, min_length=2).collect())
    assert got == [(0, [9, 5], 2)]  # the last 2 items; user 1 has too few


@pytest.mark.spark
def test_user_windows_cover_the_whole_history_each_target_once(spark: SparkSession) -> None:
    # user 0: items 10..16 at times 0..6; windows of 3 share one item: [14,15,16], [12,13,14], [10,11,12]
    rows = [(0, 10 + t, 1.0, t) for t in range(7)] + [(1, 7, 1.0, 0), (1, 8, 1.0, 5), (2, 9, 1.0, 0)]
    pos = features.positives(interactions(spark, rows))
    got = sorted((r[0], r[1]) for r in features.user_windows(pos, 3).collect())
    assert got == [(0, [10, 11, 12]), (0, [12, 13, 14]), (0, [14, 15, 16]), (1, [-1, 7, 8])]  # user 2: 1 item
    # every transition (previous item -> next item) of user 0 is a training target exactly once
    targets = [(w[j - 1], w[j]) for u, w in got if u == 0 for j in range(1, 3)]
    assert sorted(targets) == [(10 + t, 11 + t) for t in range(6)]
    got = sorted((r[0], r[1]) for r in features.user_windows(pos, 4).collect())
    assert got == [(0, [10, 11, 12, 13]), (0, [13, 14, 15, 16]), (1, [-1, -1, 7, 8])]  # window [10] too short
    with pytest.raises(ValueError, match="length"):
        features.user_windows(pos, 1)


@pytest.mark.spark
def test_pair_frequencies_count_both_sides(spark: SparkSession) -> None:
    pairs = spark.createDataFrame([(1, 2), (2, 3), (1, 3), (4, 1)], f"{S.COL_ITEM_A} int, {S.COL_ITEM_B} int")
    got = sorted((r[0], r[1]) for r in features.pair_frequencies(pairs).collect())
    assert got == [(1, 3), (2, 2), (3, 2), (4, 1)]


@pytest.mark.spark
def test_user_bags_keep_the_most_recent_items_right_padded(spark: SparkSession) -> None:
    df = interactions(spark, [(0, 5, 1.0, 30), (0, 3, 1.0, 10), (0, 9, 1.0, 20), (1, 7, 1.0, 0)])
    got = sorted((r[0], r[1], r[2]) for r in features.user_bags(features.positives(df), 2).collect())
    assert got == [(0, [5, 9], 2), (1, [7, -1], 1)]


@pytest.mark.spark
def test_cowatch_pairs_link_items_within_the_window(spark: SparkSession) -> None:
    df = interactions(spark, [(0, 1, 1.0, 0), (0, 2, 1.0, 1), (0, 3, 1.0, 2), (1, 4, 1.0, 0), (1, 1, 1.0, 5)])
    got = sorted((r[0], r[1]) for r in features.cowatch_pairs(features.positives(df), 1).collect())
    assert got == [(1, 2), (2, 3), (4, 1)]
    got = sorted((r[0], r[1]) for r in features.cowatch_pairs(features.positives(df), 2).collect())
    assert got == [(1, 2), (1, 3), (2, 3), (4, 1)]


@pytest.mark.spark
def test_item_tokens_are_hashed_padded_and_metadata_first(spark: SparkSession) -> None:
    out = {r[0]: r[1] for r in features.item_tokens(catalog(spark), 1000, 8).collect()}
    assert sorted(out) == [0, 1, 2]
    assert all(len(t) == 8 for t in out.values())
    assert out[2] == [0] * 8  # no metadata at all: padding only
    assert all(0 < t < 1000 for t in out[0])  # truncated to 8 real tokens
    assert out[1][:5].count(0) == 0 and out[1][5:] == [0, 0, 0]  # g:, l:, y:, t:quiet, t:love
    other = {r[0]: r[1] for r in features.item_tokens(catalog(spark), 1000, 8).collect()}
    assert other == out


@pytest.mark.spark
def test_item_text_is_the_title_then_the_description_in_reading_order(spark: SparkSession) -> None:
    items = spark.createDataFrame(
        [(0, "Big Heist", "A big crew."), (1, "爱情", None), (2, None, None)],
        f"{C.COL_ITEM_IDX} int, {C.COL_TITLE} string, {C.COL_DESCRIPTION} string",
    )
    out = {r[0]: r[1] for r in features.item_text(items, 1000, 6).collect()}
    assert out[2] == [0] * 6
    # "a" is too short; "big" repeats (the sequence keeps repeats, the bag would not)
    big, heist, crew = out[0][:3], out[0][1], out[0][3]
    assert out[0][0] == out[0][2] == big[0] and len({big[0], heist, crew}) == 3 and out[0][4:] == [0, 0]
    assert out[1][:3].count(0) == 0 and out[1][3:] == [0, 0, 0]  # 爱, 爱情, 情
    tokens = {r[0]: r[1] for r in features.item_tokens(items, 1000, 6, text_words=False).collect()}
    assert tokens[0] == [0] * 6  # metadata only: these items have none


@pytest.mark.spark
def test_gru_trains_on_the_sequence_windows_with_each_items_target_count(spark: SparkSession) -> None:
    from vidrec.config import load_config
    from vidrec.models.deep.params import model_params

    rows = [(0, 1, 1.0, 0), (0, 2, 1.0, 1), (0, 3, 1.0, 2), (1, 2, 1.0, 0), (1, 1, 1.0, 5)]
    params = {**model_params(load_config().deep, "gru"), "max_len": 2, "val_fraction": 0.01}
    frames = features.training_frames("gru", interactions(spark, rows), catalog(spark), params)
    seq = features.training_frames("sequence", interactions(spark, rows), catalog(spark), params)
    windows = sorted(tuple(r[S.COL_SEQ]) for r in frames[S.TRAIN].union(frames[S.VAL]).collect())
    assert windows == sorted(tuple(r[S.COL_SEQ]) for r in seq[S.TRAIN].union(seq[S.VAL]).collect())
    freq = {r[0]: r[1] for r in features.target_frequencies(frames[S.TRAIN].union(frames[S.VAL])).collect()}
    assert freq == {2: 1, 3: 1, 1: 1}  # every item but each user's first is a target once


@pytest.mark.spark
@pytest.mark.parametrize("with_media", [True, False])
def test_item_content_fills_missing_media_with_zeros_and_flags_known_items(
    spark: SparkSession, with_media: bool
) -> None:
    known = spark.createDataFrame([(0,), (0,)], f"{C.COL_ITEM_IDX} int")
    dim = 2 if with_media else 0
    df = features.item_content(catalog(spark, with_media), known, 100, 4, visual_dim=dim)
    rows = {r[C.COL_ITEM_IDX]: r.asDict() for r in df.collect()}
    assert {k: v[S.COL_KNOWN] for k, v in rows.items()} == {0: 1, 1: 0, 2: 0}
    if with_media:
        assert [rows[i][S.COL_VISUAL] for i in (0, 1, 2)] == [[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
    else:
        assert S.COL_VISUAL not in df.columns


@pytest.mark.spark
def test_split_by_hash_is_disjoint_complete_and_keeps_users_together(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(u, i) for u in range(50) for i in range(4)], f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int"
    )
    train, val = features.split_by_hash(df, [C.COL_USER_IDX], 0.2, seed=1)
    t = {(r[0], r[1]) for r in train.collect()}
    v = {(r[0], r[1]) for r in val.collect()}
    assert not t & v and len(t | v) == 200 and 0 < len(v) < 100
    assert not {u for u, _ in t} & {u for u, _ in v}
    with pytest.raises(ValueError, match="val_fraction"):
        features.split_by_hash(df, [C.COL_USER_IDX], 1.0, seed=1)


@pytest.mark.spark
@pytest.mark.parametrize(
    ("model_name", "encoder"),
    [
        ("ncf", None),
        ("multvae", None),
        ("sequence", None),
        ("gru", None),
        ("text", "cnn"),
        ("text", "bag"),
        ("fusion", "cnn"),
        ("fusion", "bag"),
    ],
)
def test_training_frames_have_the_columns_the_model_reads(
    spark: SparkSession, model_name: str, encoder: str | None
) -> None:
    from vidrec.config import load_config
    from vidrec.models.deep.networks import build_model, model_config
    from vidrec.models.deep.params import model_params

    rows = [(u, i, 1.0, 10 * u + i) for u in range(6) for i in range(u % 3, 3 + u % 3)]
    params = model_params(load_config().deep, model_name)
    if encoder:
        params["encoder"] = encoder
    frames = features.training_frames(
        model_name, interactions(spark, rows), catalog(spark), params, visual_dim=2
    )
    sizes = {"n_users": 6, "n_items": 5, "visual_dim": 2, "audio_dim": 0}
    model = build_model(model_name, model_config(model_name, params, sizes))
    assert set(model.train_columns) <= set(frames[S.TRAIN].columns)
    assert frames[S.TRAIN].columns == frames[S.VAL].columns
    if model.side_columns:
        assert set(model.side_columns) <= set(frames[S.ITEMS].columns)
    users = features.scoring_frame(model_name, interactions(spark, rows), params)
    assert set(model.score_columns) <= set(users.columns)


@pytest.mark.parametrize(
    ("rows", "procs", "per_group", "minimum", "expected"),
    [
        (1000, 2, 100, 2, 10),
        (1000, 2, 10_000, 2, 4),
        (1001, 3, 100, 1, 12),
        (5, 2, 100, 4, 4),
        (3, 2, 1, 1, 2),
    ],
)
def test_plan_row_groups_is_a_multiple_of_the_processes(
    rows: int, procs: int, per_group: int, minimum: int, expected: int
) -> None:
    assert shards.plan_row_groups(rows, procs, per_group, minimum) == expected


def test_plan_row_groups_refuses_fewer_rows_than_processes() -> None:
    with pytest.raises(ValueError, match="cannot feed 4 processes"):
        shards.plan_row_groups(3, 4, 100, 1)


@pytest.mark.spark
def test_write_shards_writes_even_row_groups_for_every_process(spark: SparkSession, tmp_path: Path) -> None:
    df = spark.range(1000).selectExpr(
        f"cast(id as int) as {C.COL_USER_IDX}", f"array(cast(id as int), 1) as {S.COL_SEQ}"
    )
    info = shards.write_shards(df, str(tmp_path / "train"), num_processes=2, rows_per_row_group=100)
    assert info.rows == 1000 and info.row_groups == 10
    assert max(info.rows_per_file) - min(info.rows_per_file) <= spark.sparkContext.defaultParallelism
    again = shards.write_shards(
        df.repartition(3), str(tmp_path / "again"), num_processes=2, rows_per_row_group=250
    )
    assert again.checksum == info.checksum and again.row_groups == 4  # same rows, same checksum
    other = shards.write_shards(
        df.limit(999), str(tmp_path / "other"), num_processes=2, rows_per_row_group=250
    )
    assert other.checksum and other.checksum != info.checksum
    files = sorted((tmp_path / "train").glob("*.parquet"))
    assert sum(pq.ParquetFile(f).metadata.num_row_groups for f in files) >= 10


@pytest.mark.spark
def test_the_driver_writes_the_same_shards_as_spark(spark: SparkSession, tmp_path: Path) -> None:
    df = spark.range(1003).selectExpr(
        f"cast(id as int) as {C.COL_USER_IDX}", f"array(cast(id as int), 7) as {S.COL_SEQ}", "id * 0.5 as w"
    )
    path = tmp_path / "train"
    by_spark = shards.write_shards(df, str(tmp_path / "spark"), 2, 100, driver_max_rows=0)
    shards.write_shards(df, str(path), 2, 40)  # 26 groups, then replaced by 12: nothing of them stays
    by_driver = shards.write_shards(df, str(path), 2, 100)
    assert (by_driver.rows, by_driver.row_groups, by_driver.checksum) == (1003, 12, by_spark.checksum)
    assert by_spark.row_groups == 12 and max(by_driver.rows_per_file) - min(by_driver.rows_per_file) == 1
    files = sorted(path.glob("*.parquet"))
    assert len(files) == 12 and all(pq.ParquetFile(f).metadata.num_row_groups == 1 for f in files)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    spark_rows = spark.read.parquet(str(tmp_path / "spark")).orderBy(C.COL_USER_IDX).collect()
    driver_rows = spark.read.parquet(str(path)).orderBy(C.COL_USER_IDX).collect()
    assert [tuple(r) for r in driver_rows] == [tuple(r) for r in spark_rows]
    first = pq.read_table(files[0]).column(C.COL_USER_IDX).to_pylist()
    assert len(set(first)) == len(first) and len({u % 12 for u in first}) == 1  # dealt round-robin


def make_runs(root: Path, model: str, dates: list[str]) -> None:
    for d in dates:
        (root / model / f"run_date={d}" / "train").mkdir(parents=True)


def test_cleanup_shards_keeps_the_newest_run_dates_per_model(tmp_path: Path) -> None:
    root = tmp_path / "wh" / shards.FEATURES_DIR
    make_runs(root, "ncf", ["2026-03-01", "2026-03-03", "2026-03-02"])
    make_runs(root, "text", ["2026-03-01"])
    removed = shards.cleanup_shards(str(tmp_path / "wh"), keep_last=2)
    assert [Path(p).name for p in removed] == ["run_date=2026-03-01"]
    left: dict[str, Any] = {m.name: sorted(p.name for p in m.iterdir()) for m in root.iterdir()}
    assert left == {"ncf": ["run_date=2026-03-02", "run_date=2026-03-03"], "text": ["run_date=2026-03-01"]}
    assert shards.cleanup_shards(str(tmp_path / "nowhere"), keep_last=1) == []
    with pytest.raises(ValueError, match="keep_last"):
        shards.cleanup_shards(str(tmp_path / "wh"), keep_last=0)


def test_shard_dir_is_versioned_by_run_date() -> None:
    root = shards.features_root("/wh/")
    assert shards.shard_dir(root, "ncf", "2026-03-31") == "/wh/features/ncf/run_date=2026-03-31"
    assert shards.features_root("/wh", "/fast/shards/") == "/fast/shards"
