"""The served rows: every rule of the list contract caught, and every model's lists mapped to ids at once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers import RECS_SCHEMA, fit_context

from vidrec import constants as C
from vidrec.data import contracts, tables
from vidrec.models.base import Candidates
from vidrec.serving.gold import COLD_START_REASON, cold_start_lists, hybrid_list, served_list, to_gold

pytestmark = pytest.mark.spark

RUN = dt.date(2026, 3, 31)


def _broken(spark: Any, lists: dict[str, list[tuple[int, str, float]]], n: int = 3) -> dict[str, set[str]]:
    """Rules broken per list, for hand-made ``gold/recommendations`` lists (user -> [(rank, item, score)])."""
    rows = [
        (RUN, user, rank, item, score, "als", "v1", "r")
        for user, entries in lists.items()
        for rank, item, score in entries
    ]
    schema = (
        "run_date date, user_id string, rank int, item_id string, score double, algorithm string, "
        "model_version string, reason string"
    )
    gold = spark.createDataFrame(rows, schema)
    seen = spark.createDataFrame([("seen", "i9")], "user_id string, item_id string")
    out: dict[str, set[str]] = {}
    for r in contracts.recommendation_violations(gold, seen, n).collect():
        out.setdefault(r[C.COL_USER], set()).add(r[contracts.COL_RULE])
    return out


def test_every_rule_names_its_list_and_a_good_list_passes(spark: Any) -> None:
    broken = _broken(
        spark,
        {
            "good": [(1, "i1", 0.9), (2, "i2", 0.8), (3, "i3", 0.8)],
            "gap": [(1, "i1", 0.9), (3, "i2", 0.8)],
            "late_start": [(2, "i1", 0.9), (3, "i2", 0.8)],
            "tied_rank": [(1, "i1", 0.9), (1, "i2", 0.9)],
            "dup_item": [(1, "i1", 0.9), (2, "i1", 0.8)],
            "long": [(1, "i1", 0.9), (2, "i2", 0.8), (3, "i3", 0.7), (4, "i4", 0.6)],
            "rises": [(1, "i1", 0.5), (2, "i2", 0.8)],
            "null_rank": [(1, "i1", 0.9), (None, "i2", 0.8)],  # type: ignore[list-item]
            "seen": [(1, "i9", 0.9)],
        },
    )
    assert "good" not in broken
    assert broken["gap"] == {contracts.RULE_RANKS}
    assert broken["late_start"] == {contracts.RULE_RANKS}
    assert broken["tied_rank"] == {contracts.RULE_RANKS}
    assert broken["dup_item"] == {contracts.RULE_DUPLICATE}
    assert broken["long"] == {contracts.RULE_TOO_LONG}
    assert broken["rises"] == {contracts.RULE_SCORES}
    assert {contracts.RULE_RANKS, contracts.RULE_NULL} <= broken["null_rank"]  # a null sorts first
    assert broken["seen"] == {contracts.RULE_SEEN}


def test_every_models_lists_become_gold_rows_in_one_mapping(spark: Any, conf: Any, tmp_path: Any) -> None:
    users = spark.createDataFrame(
        [("u0", 0), ("u1", 1), ("u2", 2)], f"{C.COL_USER} string, {C.COL_USER_IDX} int"
    )
    tables.overwrite(users, conf.warehouse, C.T_USER_INDEX)
    items = spark.createDataFrame(
        [(f"i{k}", k) for k in range(5)], f"{C.COL_ITEM} string, {C.COL_ITEM_IDX} int"
    )
    inter = spark.createDataFrame(
        [(0, 4, 1.0)], f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int, confidence double"
    )
    ctx = fit_context(spark, conf, inter, work_dir=str(tmp_path), items=items)
    pop = spark.createDataFrame(
        [(u, i, 1.0 - r / 10, r) for u in (0, 1, 2) for r, i in ((1, 1), (2, 2))],
        f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int, {C.COL_SCORE} double, {C.COL_RANK} long",
    )
    als = spark.createDataFrame([(0, 3, 0.7, 1), (1, 0, 0.6, 1)], RECS_SCHEMA)  # no list for user 2
    hyb = spark.createDataFrame([(0, 2, 0.9, 1), (0, 3, 0.8, 2), (1, 1, 0.5, 1), (2, 0, 0.4, 1)], RECS_SCHEMA)
    reasons = spark.createDataFrame(
        [(0, 2, "because you watched i4"), (1, 1, "popular in Drama")],
        f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int, {C.COL_REASON} string",
    )
    lists = [
        served_list(pop, C.ALGO_POPULARITY, "pop-v", "popular right now"),
        served_list(als, C.ALGO_ALS, "als-v", "similar taste"),
        hybrid_list(Candidates(hyb, "hyb-v", {"reasons": reasons}), n=1),
    ]
    cold = cold_start_lists(pop, {C.ALGO_ALS: (als, "als-v"), C.ALGO_HYBRID: (hyb, "hyb-v")})
    assert cold is not None
    union = lists[0]
    for frame in [*lists[1:], cold]:
        union = union.unionByName(frame)
    gold = to_gold(union, ctx, RUN)
    assert gold.schema.fieldNames() == [
        "run_date", "user_id", "rank", "item_id", "score", "algorithm", "model_version", "reason"
    ]  # fmt: skip
    rows = {(r.algorithm, r.user_id, r.rank): (r.item_id, r.model_version, r.reason) for r in gold.collect()}
    assert rows[(C.ALGO_POPULARITY, "u2", 2)] == ("i2", "pop-v", "popular right now")
    assert rows[(C.ALGO_ALS, "u0", 1)] == ("i3", "als-v", "similar taste")
    # user 2 has no ALS list: the popularity list, under ALS's version, marked as cold start
    assert rows[(C.ALGO_ALS, "u2", 1)] == ("i1", "als-v", COLD_START_REASON)
    assert rows[(C.ALGO_ALS, "u2", 2)] == ("i2", "als-v", COLD_START_REASON)
    # the hybrid keeps its top n (1) with each row's own reason; a row without one keeps null
    assert rows[(C.ALGO_HYBRID, "u0", 1)] == ("i2", "hyb-v", "because you watched i4")
    assert rows[(C.ALGO_HYBRID, "u1", 1)] == ("i1", "hyb-v", "popular in Drama")
    assert rows[(C.ALGO_HYBRID, "u2", 1)] == ("i0", "hyb-v", None)
    assert (C.ALGO_HYBRID, "u0", 2) not in rows
    assert len(rows) == 6 + 2 + 2 + 3  # popularity, ALS, ALS cold start for u2, hybrid
    contracts.check_recommendations(gold, None, 3)


def test_release_frees_a_materialised_frames_blocks(spark: Any) -> None:
    from vidrec.data.frames import materialise, release

    def cached() -> set[int]:
        return {i.id() for i in spark.sparkContext._jsc.sc().getRDDStorageInfo()}

    before = cached()
    df = materialise(spark.range(1000))
    held = cached() - before
    assert held, "a local checkpoint keeps its blocks"
    df.unpersist()  # Spark's own call leaves them
    assert held <= cached()
    release(df)
    assert not held & cached()


def test_releasing_a_local_checkpoint_does_not_warn(spark: Any) -> None:
    """Spark warns at each unpersist of a local checkpoint; the session quiets that one logger."""
    from vidrec.pipeline.session import QUIET_LOGGERS

    jvm = spark.sparkContext._jvm
    for name in QUIET_LOGGERS:
        level = jvm.org.apache.logging.log4j.LogManager.getLogger(name).getLevel()
        assert level.toString() == "ERROR", name
    assert jvm.org.apache.logging.log4j.LogManager.getRootLogger().getLevel().toString() == "WARN"
