"""The candidate-generator protocol every recommender implements, and the registry of them.

A generator takes a :class:`FitContext` (training data of one split, whom to serve, what to exclude)
and returns :class:`Candidates`: a DataFrame ``(user_idx int, item_idx int, score double, rank int)``
with ranks 1..n per user, no seen item, scores non-increasing with rank. Evaluation and the nightly
gold writer treat every generator the same way through this one interface.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from vidrec.constants import ALGO_HYBRID

log = logging.getLogger(__name__)


@dataclass
class FitContext:
    """Everything a generator may use for one fit-and-recommend.

    Attributes
    ----------
    spark : SparkSession
    conf : dict
        The whole configuration (each generator reads its own section).
    interactions : DataFrame
        ``silver/interactions`` rows of the training data (``user_idx``, ``item_idx``, counts,
        ``watch_ratio``, ``rating``, ``first_ts``, ``last_ts``, ``confidence``...).
    events : DataFrame
        Training events with ``user_idx`` and ``item_idx`` added (bronze columns otherwise).
    items : DataFrame
        The catalog (``silver/items`` columns) with ``item_idx``; may hold items with no events.
    users : DataFrame
        Profiles (``silver/users`` columns) with ``user_idx`` where known.
    target_users : DataFrame
        ``user_idx`` of the users to produce lists for.
    seen : DataFrame
        ``(user_idx, item_idx)`` pairs that must not be recommended.
    n : int
        List length.
    work_dir : str
        A folder (under the warehouse) for model artifacts of this fit.
    run_date : str
        ISO run date, for model versions.
    """

    spark: SparkSession
    conf: dict[str, Any]
    interactions: DataFrame
    events: DataFrame
    items: DataFrame
    users: DataFrame
    target_users: DataFrame
    seen: DataFrame
    n: int
    work_dir: str
    run_date: str
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Candidates:
    """A generator's output: ranked lists and the model version that made them."""

    recs: DataFrame
    model_version: str
    #: Optional extra outputs (factors, embeddings) for the gold writer; name -> DataFrame.
    artifacts: dict[str, DataFrame] = field(default_factory=dict)


Generator = Callable[[FitContext], Candidates]

_REGISTRY: dict[str, Generator] = {}


def register(name: str) -> Callable[[Generator], Generator]:
    """Decorator: register ``fn`` as the generator for algorithm ``name``."""

    def wrap(fn: Generator) -> Generator:
        _REGISTRY[name] = fn
        return fn

    return wrap


def get(name: str) -> Generator:
    """Return the generator registered for ``name``.

    Raises
    ------
    KeyError
        Naming the algorithm and the known ones.
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"no generator for algorithm '{name}' (available: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def available() -> list[str]:
    """Names of the registered generators."""
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # Importing the modules registers their generators.
    import vidrec.als  # noqa: F401
    import vidrec.content  # noqa: F401
    import vidrec.deep.generators  # noqa: F401
    import vidrec.ease  # noqa: F401
    import vidrec.hybrid  # noqa: F401
    import vidrec.itemknn  # noqa: F401
    import vidrec.popularity  # noqa: F401


def fit_all(
    ctx: FitContext,
    algorithms: Sequence[str],
    fitted: Mapping[str, Candidates] | None = None,
    stage: str = "fit",
) -> dict[str, Candidates]:
    """Fit every generator of ``algorithms`` on ``ctx``, the hybrid last, from the others' lists.

    Each generator's ``recs`` come back cached. The hybrid (when listed) blends the lists already
    fitted here (``ctx.extras["candidates"]``), limited to ``algorithms`` (``ctx.extras["components"]``),
    so no model is trained twice. ``fitted`` holds generators already fitted on ``ctx`` (reused).
    When the hybrid is listed, the others are fitted with lists of ``max(n, hybrid.pool_n)`` (the
    caller cuts them to ``n``), so the blend has a deep enough pool. ``stage`` prefixes the log lines.
    """
    from vidrec.hybrid import hybrid_conf

    out: dict[str, Candidates] = dict(fitted or {})
    blend = ALGO_HYBRID in algorithms
    pool_ctx = dataclasses.replace(ctx, n=max(ctx.n, int(hybrid_conf(ctx.conf)["pool_n"]))) if blend else ctx
    for algo in algorithms:
        if algo == ALGO_HYBRID or algo in out:
            continue
        start = time.perf_counter()
        cand = get(algo)(pool_ctx)
        out[algo] = Candidates(cand.recs.cache(), cand.model_version, cand.artifacts)
        log.info("%s: %s fitted and listed in %.1f s", stage, algo, time.perf_counter() - start)
    if blend:
        start = time.perf_counter()
        hctx = dataclasses.replace(
            ctx,
            extras={**ctx.extras, "candidates": dict(out), "components": [a for a in algorithms]},
        )
        cand = get(ALGO_HYBRID)(hctx)
        out[ALGO_HYBRID] = Candidates(cand.recs.cache(), cand.model_version, cand.artifacts)
        log.info("%s: %s blended in %.1f s", stage, ALGO_HYBRID, time.perf_counter() - start)
    return out
