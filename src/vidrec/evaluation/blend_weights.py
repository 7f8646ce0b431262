"""The hybrid's warm weights chosen on a validation split carved from the training events.

The carve is the evaluation protocol itself (:func:`vidrec.evaluation.context.holdout` with
``evaluation.protocol``, ``hybrid.validation_fraction`` and ``tune.seed``), applied to the fit
context's training events, so the test side of an evaluation is never looked at. Each component
is fitted once on the fit side; the blend is searched on the driver by the one blend-weight search
(:func:`vidrec.evaluation.search.blend_search`), the same one ``jobs/tune.py`` uses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from vidrec import constants as C
from vidrec.config.sections import HybridConf
from vidrec.evaluation.context import holdout
from vidrec.evaluation.search import LocalBlend, blend_search
from vidrec.models import registry
from vidrec.models.base import FitContext
from vidrec.serving.hybrid import NEW_ITEMS, materialise, new_item_ids, new_item_list

log = logging.getLogger(__name__)


def choose_weights(
    ctx: FitContext,
    components: Sequence[str] | None = None,
    grid: Sequence[float] | None = None,
    k: int = 10,
    conf: HybridConf | None = None,
) -> tuple[dict[str, float], float]:
    """Warm-tier blend weights with the best NDCG@``k`` on a validation split of ``ctx``'s training data.

    Coordinate ascent from ``hybrid.weights``: for each component in turn, each value of ``grid``
    with the others fixed, keeping the best, for ``tune_rounds`` rounds or until nothing improves.
    Blends are scored on the driver (:class:`~vidrec.evaluation.search.LocalBlend`: normalised and
    weighted lists, no re-ranking or filters).

    Parameters
    ----------
    ctx : FitContext
    components : sequence of str, optional
        Algorithms (and ``new_items``) to weigh; default: :meth:`HybridConf.components`.
    grid : sequence of float, optional
        Weight values tried (default ``hybrid.weight_grid``).
    k : int
        Cut-off of the NDCG.
    conf : HybridConf, optional
        The ``hybrid`` section (default ``ctx.conf.hybrid``).

    Returns
    -------
    weights : dict
        Component -> weight (every one of ``components``).
    ndcg : float
        Validation NDCG@k of those weights.

    Raises
    ------
    ValueError
        When the grid is empty or holds a negative value.
    """
    hc = conf if conf is not None else ctx.conf.hybrid
    names = list(components) if components is not None else hc.components()
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
        work_dir=f"{ctx.work_dir}/validation",
        n=max(k, hc.pool_n),
        explain=False,
    )
    try:
        vctx = v.ctx.replace(
            target_users=v.relevant_known.select(C.COL_USER_IDX).distinct(), use_gpu=ctx.use_gpu
        )
        log.info("hybrid: choosing weights on %s inside the training data", v.description)
        fitted = {name: registry.get(name)(vctx) for name in names if name != NEW_ITEMS}
        lists: dict[str, pd.DataFrame] = {name: cand.recs.toPandas() for name, cand in fitted.items()}
        if NEW_ITEMS in names:
            fresh = materialise(new_item_ids(vctx.interactions, vctx.items, hc.new_item_max_users))
            recs = new_item_list(vctx, fitted.get(C.ALGO_CONTENT), fresh, hc.new_item_slots)
            lists[NEW_ITEMS] = recs.toPandas()
        blend = LocalBlend(lists, v.relevant_known.toPandas(), k)
        params, ndcg = blend_search(
            blend, hc.weights, hc.score_norm, hc.rrf_k, [hc.score_norm], [hc.rrf_k], values, hc.tune_rounds
        )
    finally:
        v.release()
    weights = {a: float(params["weights"].get(a, 0.0)) for a in names}
    log.info("hybrid: validation ndcg@%d=%.4f for %s", k, ndcg, weights)
    return weights, ndcg
