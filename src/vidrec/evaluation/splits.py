"""Train/test splits of an event DataFrame for offline evaluation.

Every split takes events (one row per event, with ``user_id``, ``item_id`` and ``ts``) and returns
``(train, test)`` event DataFrames. The nightly default is the global time cut-off (docs/evaluation.md); the
per-user splits (:func:`per_user_chrono_split`, :func:`per_user_random_split`) are the protocols of
published MovieLens results, for comparing with them; they are deterministic: the same events give
the same split whatever their partitioning.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from vidrec.constants import COL_EVENT_ID, COL_ITEM, COL_TS, COL_USER


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
    return dt.datetime.fromtimestamp(row["q"], tz=dt.UTC).replace(tzinfo=None)


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


_N = "__split_n"
_POS = "__split_pos"
_N_TRAIN = "__split_n_train"


def _check_columns(events: DataFrame, *cols: str) -> None:
    missing = [c for c in cols if c not in events.columns]
    if missing:
        raise ValueError(f"events lack column(s) {', '.join(missing)} (have {', '.join(events.columns)})")


def _split_by_position(
    events: DataFrame, order: list[Column], col_user: str, train_share: float
) -> tuple[DataFrame, DataFrame]:
    """Number each user's events 1..n in ``order``: the first ``max(1, round(n * train_share))``
    (half up) are train, the rest test."""
    by_user = Window.partitionBy(col_user)
    numbered = (
        events.withColumn(_POS, F.row_number().over(by_user.orderBy(*order)))
        .withColumn(_N, F.count(F.lit(1)).over(by_user))
        .withColumn(_N_TRAIN, F.greatest(F.lit(1), F.floor(F.col(_N) * F.lit(train_share) + F.lit(0.5))))
    )
    is_train = F.col(_POS) <= F.col(_N_TRAIN)
    helpers = (_POS, _N, _N_TRAIN)
    return numbered.where(is_train).drop(*helpers), numbered.where(~is_train).drop(*helpers)


def per_user_chrono_split(
    events: DataFrame,
    test_fraction: float = 0.2,
    col_user: str = COL_USER,
    col_item: str = COL_ITEM,
    col_ts: str = COL_TS,
    col_event_id: str = COL_EVENT_ID,
) -> tuple[DataFrame, DataFrame]:
    """Per-user chronological split: each user's latest events go to test.

    A user with ``n`` events keeps the first ``max(1, round(n * (1 - test_fraction)))`` of them, in
    order of ``(ts, item_id, event_id)``, for train (rounding half up); the rest are test. A user
    with a single event is train only, so every test user has training history.

    Parameters
    ----------
    events : DataFrame
        One row per event with the user, item, time and event-id columns.
    test_fraction : float
        Share of each user's events held out, in (0, 1).
    col_user, col_item, col_ts, col_event_id : str
        Column names.

    Returns
    -------
    train, test : DataFrame
        Disjoint; together exactly ``events``; same columns as ``events``.

    Raises
    ------
    ValueError
        When ``test_fraction`` is outside (0, 1) or a column is missing.

    Examples
    --------
    A user with events at t=1..5 and ``test_fraction=0.2``: t=1..4 train, t=5 test.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    _check_columns(events, col_user, col_item, col_ts, col_event_id)
    order = [F.col(col_ts).asc(), F.col(col_item).asc(), F.col(col_event_id).asc()]
    return _split_by_position(events, order, col_user, 1.0 - test_fraction)


def per_user_random_split(
    events: DataFrame,
    ratio: float = 0.75,
    seed: int = 42,
    col_user: str = COL_USER,
    col_event_id: str = COL_EVENT_ID,
) -> tuple[DataFrame, DataFrame]:
    """Per-user (stratified) random split, like Microsoft Recommenders' ``python_stratified_split``.

    Each user's events are shuffled by ``xxhash64(seed, event_id)`` (ties by ``event_id``), and the
    first ``max(1, round(n * ratio))`` (rounding half up) go to train, the rest to test. The hash,
    unlike ``rand()``, does not depend on partitioning or row order, so the split is reproducible.

    Parameters
    ----------
    events : DataFrame
        One row per event with the user and event-id columns (``event_id`` unique).
    ratio : float
        Train share of each user's events, in (0, 1).
    seed : int
        Shuffle seed.
    col_user, col_event_id : str
        Column names.

    Returns
    -------
    train, test : DataFrame
        Disjoint; together exactly ``events``; same columns as ``events``. A user with a single
        event is train only.

    Raises
    ------
    ValueError
        When ``ratio`` is outside (0, 1) or a column is missing.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    _check_columns(events, col_user, col_event_id)
    order = [F.xxhash64(F.lit(int(seed)), F.col(col_event_id)).asc(), F.col(col_event_id).asc()]
    return _split_by_position(events, order, col_user, ratio)
