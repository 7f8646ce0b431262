"""The hybrid's learned blend: weights chosen on a validation carve of the training events, stored, reused.

Choosing (:func:`choose_weights`): the carve is the evaluation protocol itself
(:func:`vidrec.evaluation.context.holdout` with ``evaluation.protocol``, ``hybrid.validation_fraction``
and ``tune.seed``), applied to the fit context's training events, so the test side of an evaluation is
never looked at. Each component is fitted once on the carve's fit side (the deep ones in one launch),
with the carve's new-items list (:func:`vidrec.serving.hybrid.new_item_list`);
the normalisation, ``rrf_k`` and warm weights are searched on the driver by the one blend-weight search
(:func:`vidrec.evaluation.search.blend_search`), the same one ``jobs/tune.py`` uses.

When (``hybrid.tune_weights``, on by default): the offline evaluation chooses them, every time it runs
(weekly in the nightly, and in ``jobs/evaluate.py``), and its hybrid row is scored with them. The
choice is stored in ``ops/blend_weights`` (:func:`store_choice`) with the model versions it was made
from. In between, the served list reuses the latest stored choice of the evaluation protocol
(:func:`stored_chooser`); before the first one, ``hybrid.weights``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from vidrec import constants as C
from vidrec.config.sections import SCORE_NORMS, HybridConf
from vidrec.data import tables
from vidrec.data.frames import release
from vidrec.evaluation.context import holdout
from vidrec.evaluation.search import LocalBlend, blend_search
from vidrec.models.base import FitContext, model_version
from vidrec.serving.candidates import fit_all
from vidrec.serving.hybrid import NEW_ITEMS, BlendChoice, new_item_ids, new_item_list

log = logging.getLogger(__name__)

#: ``ops/blend_weights``: one row per choice of the blend (run date x protocol).
BLEND_TABLE: tables.Table = (C.OPS, "blend_weights")
BLEND_SCHEMA = StructType(
    [
        StructField(C.COL_RUN_DATE, DateType(), False),
        StructField("protocol", StringType(), False),
        StructField("weights_version", StringType(), False),
        StructField("score_norm", StringType(), False),
        StructField("rrf_k", IntegerType(), False),
        StructField("weights", StringType(), False),
        StructField("validation_ndcg", DoubleType(), False),
        StructField(C.COL_K, IntegerType(), False),
        StructField("validation_users", LongType(), False),
        StructField("components", StringType(), False),
        StructField("chosen_at", TimestampType(), False),
    ]
)


def carve_dir(work_dir: str) -> str:
    """Where :func:`choose_weights` keeps the carve's fits of a fit under ``work_dir``."""
    return f"{work_dir}/validation"


def choose_weights(
    ctx: FitContext,
    components: Sequence[str] | None = None,
    grid: Sequence[float] | None = None,
    k: int = 10,
    conf: HybridConf | None = None,
) -> BlendChoice:
    """The blend with the best NDCG@``k`` on a validation split of ``ctx``'s training data.

    For each normalisation (``rrf`` at each ``hybrid.rrf_k_grid`` value, and ``minmax``), coordinate
    ascent from ``hybrid.weights`` and from equal weights: each component in turn, each value of
    ``grid`` with the others fixed, keeping the best, for ``tune_rounds`` rounds or until nothing
    improves; the best setting wins. Blends are scored on the driver
    (:class:`~vidrec.evaluation.search.LocalBlend`: normalised and weighted lists, no re-ranking or
    filters).

    Parameters
    ----------
    ctx : FitContext
    components : sequence of str, optional
        Lists to weigh; default: :meth:`HybridConf.components` and ``new_items``. ``new_items`` (each
        user's best titles with at most ``new_item_max_users`` viewers, by content) is weighed like
        the others when the carve has such titles; otherwise it keeps its configured weight.
    grid : sequence of float, optional
        Weight values tried (default ``hybrid.weight_grid``).
    k : int
        Cut-off of the NDCG.
    conf : HybridConf, optional
        The ``hybrid`` section (default ``ctx.conf.hybrid``).

    Returns
    -------
    BlendChoice
        The weights (every one of ``components``), normalisation, ``rrf_k``, validation NDCG@k and
        users, and the model versions of the components fitted on the carve.

    Raises
    ------
    ValueError
        When the grid is empty or holds a negative value.
    """
    hc = conf if conf is not None else ctx.conf.hybrid
    wanted = list(components) if components is not None else [*hc.components(), NEW_ITEMS]
    # the blend's new-items list (titles with at most new_item_max_users viewers, by content) is weighed
    # like any list; titles nobody has watched reach lists by placement (new_title_share), not by weight
    search_new = NEW_ITEMS in wanted and NEW_ITEMS in hc.weights and int(hc.new_item_slots) > 0
    names = [a for a in wanted if a != NEW_ITEMS]
    values = sorted({float(v) for v in (grid if grid is not None else hc.weight_grid)})
    if not values or values[0] < 0:
        raise ValueError(f"weight grid must be non-empty and >= 0, got {values}")
    user_index = ctx.users.where(ctx.users[C.COL_USER_IDX].isNotNull()).select(C.COL_USER, C.COL_USER_IDX)
    item_index = ctx.items.select(C.COL_ITEM, C.COL_ITEM_IDX).distinct()
    v = holdout(
        ctx.spark,
        ctx.conf,
        ctx.events,
        ctx.items,
        ctx.users,
        user_index,
        item_index,
        protocol=ctx.conf.evaluation.protocol,
        fraction=hc.validation_fraction,
        seed=ctx.conf.tune.seed,
        run_date=ctx.run_date,
        work_dir=carve_dir(ctx.work_dir),
        n=max(k, hc.pool_n),
        explain=False,
    )
    try:
        vctx = v.ctx.replace(
            target_users=v.relevant_known.select(C.COL_USER_IDX).distinct(), use_gpu=ctx.use_gpu
        )
        log.info("hybrid: choosing the blend on %s inside the training data", v.description)
        fitted = fit_all(vctx, names, stage="hybrid validation")
        lists: dict[str, pd.DataFrame] = {name: cand.recs.toPandas() for name, cand in fitted.items()}
        if search_new:
            # the carve's own new titles: those whose few viewers the carve holds out are the carve's
            # cold-start titles, as titles whose every event fell on the test side are the evaluation's
            fresh = new_item_ids(vctx.interactions, vctx.items, int(hc.new_item_max_users))
            found = new_item_list(vctx, fitted.get(C.ALGO_CONTENT), fresh, int(hc.new_item_slots)).toPandas()
            if len(found):  # no new item on the carve: nothing to learn, the configured weight stays
                lists[NEW_ITEMS] = found
            names.append(NEW_ITEMS)
        versions = {name: cand.model_version for name, cand in fitted.items()}
        for cand in fitted.values():
            release(cand.recs)
            cand.release_artifacts()
        relevant: pd.DataFrame = v.relevant_known.toPandas()
        n_users = int(relevant[C.COL_USER_IDX].nunique())
        blend = LocalBlend(lists, relevant, k)
        params, ndcg = blend_search(
            blend,
            hc.weights,
            hc.score_norm,
            hc.rrf_k,
            list(SCORE_NORMS),
            hc.rrf_k_grid,
            values,
            hc.tune_rounds,
        )
    finally:
        v.release()
    weights = {a: float(w) for a, w in params["weights"].items()}
    if NEW_ITEMS in names and NEW_ITEMS not in weights:  # no new title on the carve: nothing was learned
        weights[NEW_ITEMS] = float(hc.weights.get(NEW_ITEMS, 0.0))
    choice = BlendChoice(
        weights={a: weights[a] for a in names},
        score_norm=str(params["score_norm"]),
        rrf_k=int(params["rrf_k"]),
        validation_ndcg=float(ndcg),
        k=int(k),
        validation_users=n_users,
        components=versions,
        chosen_on=ctx.run_date,
    )
    log.info(
        "hybrid: validation ndcg@%d=%.4f over %d users for %s (%s, rrf_k %d)",
        k,
        choice.validation_ndcg,
        choice.validation_users,
        choice.weights,
        choice.score_norm,
        choice.rrf_k,
    )
    return choice


class RecordingChooser:
    """:func:`choose_weights`, remembering what it chose (``choice``) for :func:`store_choice`."""

    def __init__(self) -> None:
        self.choice: BlendChoice | None = None

    def __call__(self, ctx: FitContext, components: Sequence[str], **kwargs: Any) -> BlendChoice:
        self.choice = choose_weights(ctx, components, **kwargs)
        return self.choice


def weights_version(choice: BlendChoice) -> str:
    """``blend-<date>-<hash>`` of the chosen weights, normalisation and the components' versions."""
    params = {
        "weights": choice.weights,
        "score_norm": choice.score_norm,
        "rrf_k": choice.rrf_k,
        "components": choice.components,
    }
    return model_version("blend", choice.chosen_on, params)


def store_choice(
    spark: SparkSession, warehouse: str, run_date: dt.date, protocol: str, choice: BlendChoice
) -> str:
    """Replace the (``run_date``, ``protocol``) row of ``ops/blend_weights`` with ``choice``; its version."""
    version = weights_version(choice)
    row = (
        run_date,
        protocol,
        version,
        choice.score_norm,
        int(choice.rrf_k),
        json.dumps(choice.weights, sort_keys=True),
        float(choice.validation_ndcg),
        int(choice.k),
        int(choice.validation_users),
        json.dumps(choice.components, sort_keys=True),
        dt.datetime.now(dt.UTC).replace(tzinfo=None),
    )
    df = spark.createDataFrame([row], BLEND_SCHEMA)
    tables.replace_partition(df, warehouse, BLEND_TABLE, run_date, extra_predicate=f"protocol = '{protocol}'")
    log.info("hybrid: blend %s stored for %s (%s)", version, run_date, protocol)
    return version


def latest_choice(
    spark: SparkSession, warehouse: str, run_date: dt.date, protocol: str
) -> BlendChoice | None:
    """The latest stored choice of ``protocol`` made on or before ``run_date`` (``None``: none yet)."""
    if not tables.exists(spark, warehouse, BLEND_TABLE):
        return None
    rows = (
        tables.read(spark, warehouse, BLEND_TABLE)
        .where((F.col("protocol") == protocol) & (F.col(C.COL_RUN_DATE) <= F.lit(run_date)))
        .orderBy(F.col(C.COL_RUN_DATE).desc(), F.col("chosen_at").desc())
        .limit(1)
        .collect()
    )
    if not rows:
        return None
    r = rows[0]
    return BlendChoice(
        weights={str(a): float(w) for a, w in json.loads(r["weights"]).items()},
        score_norm=r["score_norm"],
        rrf_k=int(r["rrf_k"]),
        validation_ndcg=float(r["validation_ndcg"]),
        k=int(r[C.COL_K]),
        validation_users=int(r["validation_users"]),
        components=dict(json.loads(r["components"])),
        chosen_on=r[C.COL_RUN_DATE].isoformat(),
        version=r["weights_version"],
    )


class StoredChooser:
    """A chooser that fits nothing: the latest stored choice (:func:`latest_choice`), else the conf's.

    ``choice`` is what it served (``version`` empty when it fell back to ``hybrid.weights``).
    """

    def __init__(self, spark: SparkSession, warehouse: str, run_date: dt.date, protocol: str) -> None:
        self.spark, self.warehouse, self.run_date, self.protocol = spark, warehouse, run_date, protocol
        self.choice: BlendChoice | None = None

    def __call__(self, ctx: FitContext, components: Sequence[str], **kwargs: Any) -> BlendChoice:
        hc: HybridConf = kwargs.get("conf") or ctx.conf.hybrid
        stored = latest_choice(self.spark, self.warehouse, self.run_date, self.protocol)
        if stored is None:
            log.warning(
                "hybrid: no blend chosen yet for protocol %s (ops/blend_weights): serving hybrid.weights "
                "until the offline evaluation chooses one",
                self.protocol,
            )
            self.choice = BlendChoice.from_conf(hc, components)
            return self.choice
        missing = sorted(set(components) - set(stored.weights))
        if missing:
            log.warning("hybrid: %s not in the stored blend %s: conf weights", missing, stored.version)
        weights = {a: stored.weights.get(a, float(hc.weights.get(a, 0.0))) for a in components}
        log.info(
            "hybrid: serving the blend %s chosen on %s (validation ndcg@%d=%.4f): %s",
            stored.version,
            stored.chosen_on,
            stored.k,
            stored.validation_ndcg,
            weights,
        )
        self.choice = dataclasses.replace(stored, weights=weights)
        return self.choice


def stored_chooser(spark: SparkSession, warehouse: str, run_date: dt.date, protocol: str) -> StoredChooser:
    """The served list's chooser (:class:`StoredChooser`) for ``run_date`` and ``protocol``."""
    return StoredChooser(spark, warehouse, run_date, protocol)
