"""The publish gate's decision (vidrec.evaluation.gate), as pure functions of the numbers.

Plus one held night through the recommend stage on a hand-made warehouse (previous lists re-dated,
``ops/runs``, exit code 6): the gate decides before anything is fitted, so no nightly is needed. A
normal first night publishing is checked on the reference run of ``tests/test_reliability.py``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec import pipeline
from vidrec.config import ConfigError
from vidrec.data import schemas, tables
from vidrec.evaluation.gate import EXIT_HELD, decide, signal
from vidrec.evaluation.served import SPLIT_SERVED
from vidrec.pipeline import exit_code, held_gate

TONIGHT = dt.date(2026, 3, 31)


def day(n: int) -> dt.date:
    return TONIGHT - dt.timedelta(days=n)


@pytest.fixture
def params(base_conf):
    return base_conf.override(
        {"publish_gate": {"tolerance": 0.3, "nights": 4, "min_nights": 3, "min_users": 10}}
    )


HISTORY = [(day(1), 0.30, 50), (day(2), 0.20, 50), (day(3), 0.25, 50)]  # median 0.25


def test_a_drop_beyond_the_tolerance_holds_with_the_numbers(params) -> None:
    got = decide(SPLIT_SERVED, (0.15, 40), HISTORY, params.publish_gate)  # 40% below 0.25
    assert got.hold
    assert got.numbers == {
        "metric": "ndcg",
        "tonight": 0.15,
        "users": 40,
        "nights": 3,
        "median": 0.25,
        "since": "2026-03-28",
        "tolerance": 0.3,
        "drop": 0.4,
    }
    assert "0.1500 (40 users) vs median 0.2500 of 3 earlier night(s)" in got.reason
    assert "drop 40.0% above publish_gate.tolerance 30.0%" in got.reason


def test_a_normal_night_publishes(params) -> None:
    for value in (0.19, 0.25, 0.40):  # 24% below, equal, above
        got = decide(SPLIT_SERVED, (value, 40), HISTORY, params.publish_gate)
        assert not got.hold, value
        assert "within publish_gate.tolerance" in got.reason


def test_no_decision_without_enough_nights_users_or_a_signal(params) -> None:
    p = params.publish_gate
    assert "< publish_gate.min_nights 3" in decide(SPLIT_SERVED, (0.01, 40), HISTORY[:2], p).reason
    assert "< publish_gate.min_users 10" in decide(SPLIT_SERVED, (0.01, 9), HISTORY, p).reason
    assert "nothing to compare" in decide(SPLIT_SERVED, None, HISTORY, p).reason
    # nights with too few users do not count: two left, below min_nights
    thin = [*HISTORY[:2], (day(3), 0.9, 5)]
    got = decide(SPLIT_SERVED, (0.01, 40), thin, p)
    assert not got.hold and got.numbers["nights"] == 2
    assert not decide(SPLIT_SERVED, (0.0, 40), [(day(i), 0.0, 50) for i in (1, 2, 3)], p).hold


def test_the_median_is_over_the_latest_nights_only(params) -> None:
    # nights: 4; the two oldest nights (high) fall out, the latest four have median 0.1
    history = [(day(i), 0.1, 50) for i in (1, 2, 3, 4)] + [(day(5), 0.9, 50), (day(6), 0.9, 50)]
    got = decide(SPLIT_SERVED, (0.08, 40), history, params.publish_gate)
    assert not got.hold and got.numbers["median"] == 0.1 and got.numbers["since"] == "2026-03-27"


def test_signal_groups_rows_by_split_and_night(params) -> None:
    def row(d, split, metric, value):
        return {C.COL_RUN_DATE: d, C.COL_SPLIT: split, C.COL_METRIC: metric, C.COL_VALUE: value}

    rows = [
        row(TONIGHT, SPLIT_SERVED, "ndcg", 0.1),
        row(TONIGHT, SPLIT_SERVED, "users_evaluated", 30.0),
        row(day(1), SPLIT_SERVED, "ndcg", 0.3),
        row(day(1), SPLIT_SERVED, "users_evaluated", 31.0),
        row(day(2), SPLIT_SERVED, "users_evaluated", 31.0),  # no ndcg: skipped
        row(day(7), "per_user_random", "ndcg", 0.4),
    ]
    got = signal(rows, TONIGHT, params.publish_gate)
    assert got == {
        SPLIT_SERVED: ((0.1, 30), [(day(1), 0.3, 31)]),
        "per_user_random": (None, [(day(7), 0.4, 0)]),
    }


def test_exit_code_6_only_when_a_run_held() -> None:
    held = {"recommend": {"publish_gate": {"decision": "held", "reason": "ndcg dropped"}}}
    published = {"recommend": {"publish_gate": {"decision": "publish", "reason": "fine"}}}
    assert EXIT_HELD == 6
    assert held_gate(held) == "ndcg dropped" and held_gate(published) is None and held_gate({}) is None
    assert exit_code([published, {}]) == 0
    assert exit_code([published, held]) == 6


def test_gate_settings_are_checked(base_conf) -> None:
    with pytest.raises(ConfigError, match=r"publish_gate.tolerance must be in \(0, 1\), got 1.5"):
        base_conf.override({"publish_gate": {"tolerance": 1.5}})
    with pytest.raises(ConfigError, match=r"publish_gate.min_nights must be in \[1, publish_gate.nights\]"):
        base_conf.override({"publish_gate": {"nights": 2, "min_nights": 3}})
    with pytest.raises(ConfigError, match=r"publish_gate.metric must be one of"):
        base_conf.override({"publish_gate": {"metric": "rmse"}})


@pytest.mark.spark
def test_a_held_night_serves_the_previous_lists_re_dated_logs_why_and_exits_6(spark, conf) -> None:
    wh = conf.warehouse
    conf = conf.override({"publish_gate": {"algorithm": "als", "min_users": 5}})
    old = dt.date(2026, 3, 27)
    lists = [
        (old, f"u{u}", r, f"i{u + r}", 1.0 / r, algo, f"{algo}-2026-03-27-abc", "because")
        for algo in ("als", "popularity")
        for u in range(3)
        for r in (1, 2)
    ]
    tables.append(
        spark.createDataFrame(lists, schemas.RECOMMENDATIONS), wh, C.T_RECOMMENDATIONS, [C.COL_RUN_DATE]
    )
    nights = [(day(3), 0.30), (day(2), 0.28), (day(1), 0.32), (TONIGHT, 0.05)]  # tonight: 83% below 0.30
    rows = [
        (d, "als", "als-old", metric, k, value, SPLIT_SERVED)
        for d, ndcg in nights
        for metric, k, value in (("ndcg", 10, ndcg), ("users_evaluated", None, 40.0))
    ]
    tables.append(spark.createDataFrame(rows, schemas.MODEL_METRICS), wh, C.T_MODEL_METRICS, [C.COL_RUN_DATE])

    summary = pipeline.run_nightly(spark, conf, TONIGHT, None, stages=["recommend"])

    gate = summary["recommend"]["publish_gate"]
    assert gate["decision"] == "held"
    assert gate["splits"][SPLIT_SERVED] == {
        "hold": True,
        "metric": "ndcg",
        "tonight": 0.05,
        "users": 40,
        "nights": 3,
        "median": 0.3,
        "since": "2026-03-28",
        "tolerance": 0.3,
        "drop": pytest.approx(0.8333, abs=1e-4),
    }
    assert exit_code([summary]) == 6
    recs = tables.read(spark, wh, C.T_RECOMMENDATIONS)
    cols = [c for c in recs.columns if c != C.COL_RUN_DATE]
    before = recs.where(F.col(C.COL_RUN_DATE) == F.lit(old)).select(cols)
    held = recs.where(F.col(C.COL_RUN_DATE) == F.lit(TONIGHT)).select(cols)
    assert held.count() == before.count() == 12
    assert held.exceptAll(before).count() == 0 and before.exceptAll(held).count() == 0  # model_version kept
    (run,) = tables.read(spark, wh, C.T_RUNS).collect()
    assert (run.run_date, run.stage, run.status) == (TONIGHT, "recommend", "succeeded")
    logged = json.loads(run.details)["publish_gate"]
    assert logged["decision"] == "held"
    assert (
        "als ndcg 0.0500 (40 users) vs median 0.3000 of 3 earlier night(s) since 2026-03-28"
        in logged["reason"]
    )
    assert run.model_versions == {"als": "als-2026-03-27-abc", "popularity": "popularity-2026-03-27-abc"}
