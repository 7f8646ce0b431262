"""The one fit-context builder and the one hold-out carve, shared by the nightly, evaluation and tuning.

- :func:`build_context`: a :class:`~vidrec.models.base.FitContext` from events, catalog, profiles
  and the id indexes (interactions folded from the events unless given; seen pairs from them).
- :func:`split_events`: the protocols' split of events into a fit side and a held-out side
  (``time``: a global cut-off; ``chrono``: each user's latest share; ``random``: a seeded per-user
  share). The offline evaluation splits all events with it; tuning and the hybrid's weight choice
  split the *training* side again with the same function, so their validation is the protocol
  itself, inside the training data, and never looks at the test side.
- :func:`holdout`: both together: the context of the fit side, and the relevant held-out pairs it
  is scored against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import Config
from vidrec.data.frames import snapshot
from vidrec.data.matrix import build_interactions, seen_pairs
from vidrec.evaluation.splits import per_user_chrono_split, per_user_random_split, time_cutoff_split
from vidrec.models.base import FitContext

log = logging.getLogger(__name__)

#: evaluation.protocol -> the split name written to ``gold/model_metrics``.
PROTOCOLS = {"time": "time_cutoff", "chrono": "per_user_chrono", "random": "per_user_random"}
SPLIT_TIME = PROTOCOLS["time"]
#: A held-out rating at or above this counts as relevant (time protocol).
RELEVANT_RATING = 4.0


def relevant_pairs(test_interactions: DataFrame) -> DataFrame:
    """``(user_idx, item_idx)`` of held-out interactions that count as relevant (time protocol):
    completed, liked, favorited or rated at least :data:`RELEVANT_RATING`."""
    ic = C.COUNT_COLS
    cond = (
        (F.col(ic["complete"]) > 0)
        | (F.col(ic["like"]) > 0)
        | (F.col(ic["favorite"]) > 0)
        | (F.col(C.COL_RATING) >= RELEVANT_RATING)
    )
    return test_interactions.where(cond).select(C.COL_USER_IDX, C.COL_ITEM_IDX)


def with_indexes(events: DataFrame, user_index: DataFrame, item_index: DataFrame) -> DataFrame:
    """Events with ``user_idx`` and ``item_idx`` attached (events of unindexed ids dropped)."""
    return events.join(user_index.select(C.COL_USER, C.COL_USER_IDX), C.COL_USER).join(
        item_index.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM
    )


def split_events(
    events: DataFrame, protocol: str, fraction: float, seed: int
) -> tuple[DataFrame, DataFrame, str]:
    """``(fit, held_out, description)``: ``events`` split by ``protocol`` with ``fraction`` held out.

    Raises
    ------
    ValueError
        On an unknown protocol or a fraction outside (0, 1).
    """
    if protocol == "time":
        fit, held, cutoff = time_cutoff_split(events, fraction)
        return fit, held, f"time cut-off {cutoff.isoformat()}"
    if protocol == "chrono":
        fit, held = per_user_chrono_split(events, fraction)
        return fit, held, f"per-user chronological, last {fraction:.0%} held out"
    if protocol == "random":
        fit, held = per_user_random_split(events, 1.0 - fraction, seed=seed)
        return fit, held, f"per-user random {1 - fraction:.0%}/{fraction:.0%}, seed {seed}"
    raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")


def build_context(
    spark: SparkSession,
    conf: Config,
    events: DataFrame,
    items: DataFrame,
    users: DataFrame,
    user_index: DataFrame,
    item_index: DataFrame,
    *,
    run_date: str,
    work_dir: str,
    n: int,
    targets: DataFrame | None = None,
    interactions: DataFrame | None = None,
    use_gpu: bool = False,
    save_model: bool = False,
    explain: bool = True,
) -> FitContext:
    """The fit context of ``events``: what every generator, the hybrid and the gold writer read.

    Parameters
    ----------
    events : DataFrame
        Training events (bronze columns); ``user_idx``/``item_idx`` are attached unless present.
    items, users : DataFrame
        Catalog and profiles; the indexes are attached unless present (every indexed user is kept,
        with null profile columns where none is known), then both are computed once (:func:`snapshot`).
    user_index, item_index : DataFrame
        ``silver/user_index`` and ``silver/item_index`` (as of the run date).
    run_date, work_dir : str
        For model versions and model artifacts.
    n : int
        List length.
    targets : DataFrame, optional
        ``user_idx`` to serve; default every user of ``user_index``.
    interactions : DataFrame, optional
        The ``silver/interactions`` rows of ``events`` when already folded; default folded here.
    use_gpu, save_model, explain : bool
        See :class:`~vidrec.models.base.FitContext`.
    """
    if C.COL_USER_IDX not in events.columns:
        events = with_indexes(events, user_index, item_index)
    if interactions is None:
        interactions = build_interactions(events, items, user_index, item_index, conf.matrix.weights)
    if C.COL_ITEM_IDX not in items.columns:
        items = items.join(item_index.select(C.COL_ITEM, C.COL_ITEM_IDX), C.COL_ITEM)
    if C.COL_USER_IDX not in users.columns:
        users = users.join(user_index.select(C.COL_USER, C.COL_USER_IDX), C.COL_USER, "right")
    # a night's generators, the blend, the explanations and the gold writer read these dozens of
    # times: computed once instead of two Delta scans and a join per read
    items, users = snapshot(items), snapshot(users)
    return FitContext(
        spark=spark,
        conf=conf,
        interactions=interactions,
        events=events,
        items=items,
        users=users,
        target_users=targets if targets is not None else user_index.select(C.COL_USER_IDX),
        seen=seen_pairs(interactions, conf.recommend.exclude_played),
        n=n,
        work_dir=work_dir,
        run_date=run_date,
        use_gpu=use_gpu,
        save_model=save_model,
        explain=explain,
    )


@dataclass
class Holdout:
    """A fit context over one side of a split and what its lists are scored against.

    Attributes
    ----------
    ctx : FitContext
        Fitted on the fit side; ``target_users`` are the users with a relevant held-out pair.
    relevant : DataFrame
        ``(user_idx, item_idx)`` held-out pairs that count (time protocol: by kind of feedback;
        per-user protocols: every held-out item), minus pairs already seen on the fit side.
    relevant_known : DataFrame
        ``relevant`` of users with at least ``evaluation.min_train_events`` fit-side interactions
        (the main evaluation slice).
    held_out : DataFrame
        Interactions folded from the held-out events (ratings for RMSE).
    description : str
    cached : list of DataFrame
        What :meth:`release` unpersists.
    """

    ctx: FitContext
    relevant: DataFrame
    relevant_known: DataFrame
    held_out: DataFrame
    description: str
    cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        """Unpersist the cached frames."""
        for df in self.cached:
            df.unpersist()


def holdout(
    spark: SparkSession,
    conf: Config,
    events: DataFrame,
    items: DataFrame,
    users: DataFrame,
    user_index: DataFrame,
    item_index: DataFrame,
    *,
    protocol: str,
    fraction: float,
    seed: int,
    run_date: str,
    work_dir: str,
    n: int,
    save_model: bool = False,
    explain: bool = False,
) -> Holdout:
    """Split ``events`` by ``protocol`` (:func:`split_events`) and build the fit side's context.

    The fit-side events, interactions and seen pairs, the held-out interactions and the relevant
    pairs are cached (:meth:`Holdout.release` frees them).
    """
    if C.COL_USER_IDX not in events.columns:
        events = with_indexes(events, user_index, item_index)
    items = snapshot(items)  # read by both sides' folds and by every fit (see build_context)
    fit_ev, held_ev, desc = split_events(events, protocol, fraction, seed)
    fit_ev = fit_ev.cache()
    weights = conf.matrix.weights
    fit_i = build_interactions(fit_ev, items, user_index, item_index, weights).cache()
    held_i = build_interactions(held_ev, items, user_index, item_index, weights).cache()
    ctx = build_context(
        spark,
        conf,
        fit_ev,
        items,
        users,
        user_index,
        item_index,
        run_date=run_date,
        work_dir=work_dir,
        n=n,
        interactions=fit_i,
        save_model=save_model,
        explain=explain,
    )
    seen = ctx.seen.cache()
    held = relevant_pairs(held_i) if protocol == "time" else held_i.select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    relevant = held.join(seen, [C.COL_USER_IDX, C.COL_ITEM_IDX], "left_anti").cache()
    known = (
        fit_i.groupBy(C.COL_USER_IDX)
        .agg(F.count(F.lit(1)).alias("_n"))
        .where(F.col("_n") >= int(conf.evaluation.min_train_events))
    )
    relevant_known = relevant.join(known.select(C.COL_USER_IDX), C.COL_USER_IDX, "left_semi").cache()
    targets = relevant.select(C.COL_USER_IDX).distinct().cache()
    ctx = ctx.replace(seen=seen, target_users=targets)
    cached = [fit_ev, fit_i, held_i, seen, relevant, relevant_known, targets]
    return Holdout(ctx, relevant, relevant_known, held_i, desc, cached)
