"""Train/test splits of an event DataFrame for offline evaluation.

Every split takes events (one row per event, with ``user_id``, ``item_id`` and ``ts``) and returns
``(train, test)`` event DataFrames. The nightly default is the global time cut-off of DESIGN.md.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vidrec.constants import COL_TS, COL_USER


def time_cutoff(events: DataFrame, test_fraction: float, col_ts: str = COL_TS) -> dt.datetime:
    """The timestamp below which ``1 - test_fraction`` of ``events`` fall.

    Raises
    ------
    ValueError
        When ``test_fraction`` is outside (0, 1) or ``events`` is empty.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    row = events.select(
        F.percentile_approx(F.col(col_ts).cast("double"), 1.0 - test_fraction, 10000).alias("q")
    ).first()
    if row is None or row["q"] is None:
        raise ValueError("time_cutoff: no events to split")
    return dt.datetime.fromtimestamp(row["q"], tz=dt.timezone.utc).replace(tzinfo=None)


def time_cutoff_split(
    events: DataFrame,
    test_fraction: float = 0.2,
    cutoff: dt.datetime | None = None,
    col_user: str = COL_USER,
    col_ts: str = COL_TS,
) -> tuple[DataFrame, DataFrame, dt.datetime]:
    """Global time split: train on events before the cut-off, test on events at or after it.

    Test keeps only users that have at least one training event (the protocol evaluates users seen
    in training). The cut-off is the ``1 - test_fraction`` quantile of event time unless given.

    Returns
    -------
    train, test : DataFrame
    cutoff : datetime (UTC, naive)
    """
    if cutoff is None:
        cutoff = time_cutoff(events, test_fraction, col_ts)
    ts_cut = F.lit(cutoff.isoformat(sep=" ")).cast("timestamp")  # parsed in the session time zone (UTC)
    train = events.where(F.col(col_ts) < ts_cut)
    test = events.where(F.col(col_ts) >= ts_cut).join(
        train.select(col_user).distinct(), on=col_user, how="left_semi"
    )
    return train, test, cutoff
