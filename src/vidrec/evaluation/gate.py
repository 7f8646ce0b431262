"""The publish gate: tonight's quality of the served algorithm against the previous nights'.

The recommend stage asks :func:`check` before it fits anything. The signal is a metric
(``publish_gate.metric``, default nDCG) of the served algorithm (``publish_gate.algorithm``) in
``gold/model_metrics``: the served-list check (split ``served_next_day``, written every night by the
evaluate stage) and, on a night the offline evaluation ran, its split too. For each split with a row
tonight, tonight's value is compared with the median of the previous ``publish_gate.nights`` nights
that have one; a night counts only with at least ``publish_gate.min_users`` users evaluated, and the
gate applies once ``publish_gate.min_nights`` such earlier nights exist. A relative drop
``(median - tonight) / median`` above ``publish_gate.tolerance`` on any split holds the lists:
:func:`previous_lists` are served again, re-dated to tonight with their ``model_version``, the run
finishes, and the nightly exits 6 (:data:`EXIT_HELD`) so that the scheduler alerts.

:func:`decide` is the decision alone, a pure function of the numbers.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config.sections import PublishGateConf
from vidrec.data import tables

log = logging.getLogger(__name__)

#: The exit code of a nightly whose publish gate held the previous lists (0-5 are taken).
EXIT_HELD = 6

_USERS = "users_evaluated"


@dataclass(frozen=True)
class SplitDecision:
    """The gate's finding on one split: ``hold`` and why, with the numbers."""

    split: str
    hold: bool
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


def decide(
    split: str,
    tonight: tuple[float, int] | None,
    history: Sequence[tuple[dt.date, float, int]],
    params: PublishGateConf,
) -> SplitDecision:
    """Whether tonight's ``(value, users)`` of ``split`` drops too far below the previous nights'.

    ``history`` holds ``(run_date, value, users)`` of earlier nights, any order. Nights with fewer
    than ``params.min_users`` users do not count; the latest ``params.nights`` of the others give the
    median. Holds only when tonight's night counts, ``params.min_nights`` earlier nights count, the
    median is positive and ``(median - value) / median > params.tolerance``.
    """
    metric = params.metric
    if tonight is None:
        return SplitDecision(split, False, f"no {metric} of {params.algorithm} tonight: nothing to compare")
    value, users = tonight
    numbers: dict[str, Any] = {"metric": metric, "tonight": round(value, 4), "users": users}
    if users < params.min_users:
        why = f"{users} user(s) evaluated tonight < publish_gate.min_users {params.min_users}: no decision"
        return SplitDecision(split, False, why, numbers)
    counted = sorted((h for h in history if h[2] >= params.min_users), key=lambda h: h[0])[-params.nights :]
    numbers["nights"] = len(counted)
    if len(counted) < params.min_nights:
        why = f"{len(counted)} earlier night(s) with a signal < publish_gate.min_nights {params.min_nights}"
        return SplitDecision(split, False, why, numbers)
    median = statistics.median(v for _, v, _ in counted)
    numbers.update(
        {"median": round(median, 4), "since": counted[0][0].isoformat(), "tolerance": params.tolerance}
    )
    if median <= 0:
        return SplitDecision(
            split, False, f"median {metric} of the earlier nights is 0: no decision", numbers
        )
    drop = (median - value) / median
    numbers["drop"] = round(drop, 4)
    verdict = "above" if drop > params.tolerance else "within"
    why = (
        f"{params.algorithm} {metric} {value:.4f} ({users} users) vs median {median:.4f} of {len(counted)} "
        f"earlier night(s) since {counted[0][0]}: drop {drop:.1%} {verdict} publish_gate.tolerance "
        f"{params.tolerance:.1%}"
    )
    return SplitDecision(split, drop > params.tolerance, why, numbers)


def signal(
    rows: Sequence[Mapping[str, Any]], run_date: dt.date, params: PublishGateConf
) -> dict[str, tuple[tuple[float, int] | None, list[tuple[dt.date, float, int]]]]:
    """Per split: tonight's ``(value, users)`` (or ``None``) and the earlier nights', from metric rows.

    ``rows`` are ``gold/model_metrics`` rows (``run_date, split, metric, value``) of the served
    algorithm, metrics ``params.metric`` and ``users_evaluated``. A night without
    ``users_evaluated`` counts its users as 0.
    """
    nights: dict[tuple[str, dt.date], dict[str, float]] = {}
    for r in rows:
        nights.setdefault((r[C.COL_SPLIT], r[C.COL_RUN_DATE]), {})[r[C.COL_METRIC]] = float(r[C.COL_VALUE])
    out: dict[str, tuple[tuple[float, int] | None, list[tuple[dt.date, float, int]]]] = {}
    for (split, day), values in sorted(nights.items()):
        if params.metric not in values:
            continue
        now, history = out.setdefault(split, (None, []))
        point = (values[params.metric], int(values.get(_USERS, 0)))
        if day == run_date:
            out[split] = (point, history)
        elif day < run_date:
            history.append((day, *point))
    return out


def metric_rows(spark: SparkSession, warehouse: str, run_date: dt.date, splits: Sequence[str],
                params: PublishGateConf) -> list[Any]:  # fmt: skip
    """The ``gold/model_metrics`` rows :func:`signal` reads, up to ``run_date`` (one small Spark job)."""
    if not tables.exists(spark, warehouse, C.T_MODEL_METRICS):
        return []
    return (
        tables.read(spark, warehouse, C.T_MODEL_METRICS)
        .where(
            (F.col(C.COL_ALGORITHM) == params.algorithm)
            & F.col(C.COL_SPLIT).isin(list(splits))
            & F.col(C.COL_METRIC).isin([params.metric, _USERS])
            & (F.col(C.COL_RUN_DATE) <= F.lit(run_date))
        )
        .select(C.COL_RUN_DATE, C.COL_SPLIT, C.COL_METRIC, C.COL_VALUE)
        .collect()
    )


def check(
    spark: SparkSession, warehouse: str, run_date: dt.date, splits: Sequence[str], params: PublishGateConf
) -> dict[str, Any]:
    """The gate's verdict for ``run_date``: ``{"decision": "publish"|"held", "reason", "splits": {..}}``.

    ``splits`` are the splits to watch (the served-list check's, and the offline evaluation's
    protocol split); a split without a row tonight is skipped.
    """
    if not params.enabled:
        return {"decision": "publish", "reason": "publish_gate.enabled is false", "splits": {}}
    found = signal(metric_rows(spark, warehouse, run_date, splits, params), run_date, params)
    decisions = [decide(s, found[s][0], found[s][1], params) for s in splits if s in found and found[s][0]]
    held = [d for d in decisions if d.hold]
    if held:
        reason = "; ".join(f"{d.split}: {d.reason}" for d in held)
    elif decisions:
        reason = "; ".join(f"{d.split}: {d.reason}" for d in decisions)
    else:
        reason = (
            f"no {params.metric} of {params.algorithm} tonight in {', '.join(splits)}: nothing to compare"
        )
    return {
        "decision": "held" if held else "publish",
        "reason": reason,
        "splits": {d.split: {"hold": d.hold, **d.numbers} for d in decisions},
    }


def previous_lists(
    spark: SparkSession, warehouse: str, run_date: dt.date, algorithms: Sequence[str]
) -> DataFrame | None:
    """The latest earlier ``gold/recommendations`` lists of ``algorithms``, re-dated to ``run_date``.

    Every column as it was (``model_version`` included) but ``run_date``; ``None`` when no earlier
    lists exist.
    """
    if not tables.exists(spark, warehouse, C.T_RECOMMENDATIONS):
        return None
    recs = tables.read(spark, warehouse, C.T_RECOMMENDATIONS).where(
        (F.col(C.COL_RUN_DATE) < F.lit(run_date)) & F.col(C.COL_ALGORITHM).isin(list(algorithms))
    )
    row = recs.agg(F.max(C.COL_RUN_DATE)).first()
    last = row[0] if row is not None else None
    if last is None:
        return None
    return recs.where(F.col(C.COL_RUN_DATE) == F.lit(last)).withColumn(C.COL_RUN_DATE, F.lit(run_date))
