"""Fit a set of algorithms on one context: every generator once, then the hybrid blend of their lists."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence

from vidrec.constants import ALGO_HYBRID
from vidrec.data.frames import materialise
from vidrec.models import registry
from vidrec.models.base import Candidates, FitContext
from vidrec.models.deep.generators import fit_deep_models, generate_deep
from vidrec.models.deep.launch import FitResult
from vidrec.models.deep.params import MODEL_NAMES as DEEP_MODELS
from vidrec.serving.hybrid import WeightChooser, generate_hybrid

log = logging.getLogger(__name__)


def fit_all(
    ctx: FitContext,
    algorithms: Sequence[str],
    fitted: Mapping[str, Candidates] | None = None,
    stage: str = "fit",
    choose_weights: WeightChooser | None = None,
) -> dict[str, Candidates]:
    """Fit every generator of ``algorithms`` on ``ctx``, the hybrid last, from the others' lists.

    Each generator's ``recs`` come back computed and cut from their lineage (:func:`materialise`: free
    them with :func:`~vidrec.serving.hybrid.common.release`); its log line times its own fit and
    lists, with their row count. The hybrid (when listed) blends the lists already fitted here,
    limited to ``algorithms``, so no model is trained twice. ``fitted`` holds generators already
    fitted on ``ctx`` (reused). When the hybrid is listed, the others are fitted with lists of
    ``max(n, hybrid.pool_n)`` (the caller cuts them to ``n``), so the blend has a deep enough pool.
    ``stage`` prefixes the log lines; ``choose_weights`` picks the hybrid's weights when
    ``hybrid.tune_weights`` is on.
    """
    out: dict[str, Candidates] = dict(fitted or {})
    blend = ALGO_HYBRID in algorithms
    pool_ctx = dataclasses.replace(ctx, n=max(ctx.n, ctx.conf.hybrid.pool_n)) if blend else ctx
    deep = [a for a in algorithms if a in DEEP_MODELS and a not in out]
    trained: dict[str, FitResult] = {}
    if len(deep) > 1:  # one training launch for all of them (the processes start once)
        start = time.perf_counter()
        trained = fit_deep_models(pool_ctx, deep)
        log.info(
            "%s: %s trained in one launch in %.1f s", stage, ", ".join(deep), time.perf_counter() - start
        )
    for algo in algorithms:
        if algo == ALGO_HYBRID or algo in out:
            continue
        start = time.perf_counter()
        if algo in trained:
            cand = generate_deep(pool_ctx, algo, trained[algo])
        else:
            cand = registry.get(algo)(pool_ctx)
        # listed now, so the line below times this model's own work; checkpointed rather than cached,
        # so what reads the lists later (the blend, the gold rows, the metrics) plans and ships none of
        # the model's own lineage (its Python scoring functions made tasks of 2-30 MiB)
        recs = materialise(cand.recs)
        rows = recs.count()
        out[algo] = Candidates(recs, cand.model_version, cand.artifacts)
        log.info(
            "%s: %s fitted and listed in %.1f s (%d rows)", stage, algo, time.perf_counter() - start, rows
        )
    if blend:
        start = time.perf_counter()
        cand = generate_hybrid(ctx, dict(out), list(algorithms), choose_weights)
        out[ALGO_HYBRID] = Candidates(materialise(cand.recs), cand.model_version, cand.artifacts)
        log.info("%s: %s blended in %.1f s", stage, ALGO_HYBRID, time.perf_counter() - start)
    return out
