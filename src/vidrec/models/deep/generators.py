"""The deep models as candidate generators (:mod:`vidrec.models.registry` protocol).

Importing this module registers ``ncf``, ``multvae``, ``sequence``, ``gru``, ``text`` and ``fusion``. Each
generator fits its model with :func:`vidrec.models.deep.launch.fit` (Spark features -> shards -> DDP via
TorchDistributor) and scores ``ctx.target_users`` with :func:`vidrec.models.deep.score.score_users`.

Who gets a list: users with a positive training interaction (``ncf``, ``fusion``: those with an
id embedding; ``multvae``: a bag; ``sequence``, ``gru``, ``text``: a history). Others get none here (the
nightly gives them the cold-start list). Which items: ``ncf``, ``multvae``, ``sequence`` and ``gru`` rank
items with a positive training interaction (an id they learned); ``text`` and ``fusion`` rank
every catalog item, including items with no interactions yet. ``multvae`` also returns the
artifact ``user_embeddings``: ``(user_idx int, embedding array<float>)``.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.models.base import Candidates, FitContext, model_version
from vidrec.models.deep import features
from vidrec.models.deep.launch import FitResult, fit, fit_many
from vidrec.models.deep.score import embed_users, score_users

log = logging.getLogger(__name__)

#: Models that rank only items they saw in training (id embeddings); the others rank the catalog.
ID_ONLY_MODELS = (C.ALGO_NCF, C.ALGO_MULTVAE, C.ALGO_SEQUENCE, C.ALGO_GRU)
#: Artifact name of Mult-VAE's user embeddings (the lead writes it to ``gold/user_embeddings``).
USER_EMBEDDINGS = "user_embeddings"


def candidate_items(model_name: str, ctx: FitContext) -> DataFrame:
    """``item_idx`` that ``model_name`` may recommend (catalog items; trained ones for id-only models)."""
    catalog = ctx.items.select(F.col(C.COL_ITEM_IDX).cast("int").alias(C.COL_ITEM_IDX)).distinct()
    if model_name in ID_ONLY_MODELS:
        trained = features.positives(ctx.interactions).select(C.COL_ITEM_IDX).distinct()
        return catalog.join(trained, C.COL_ITEM_IDX, "left_semi")
    return catalog


def scoring_users(model_name: str, ctx: FitContext, result: FitResult) -> DataFrame:
    """Target users with the features the model scores from (and an id it knows, if it uses ids)."""
    users = features.scoring_frame(model_name, ctx.interactions, result.params)
    users = users.join(ctx.target_users.select(C.COL_USER_IDX).distinct(), C.COL_USER_IDX, "left_semi")
    if "n_users" in result.sizes and model_name in (C.ALGO_NCF, C.ALGO_FUSION):
        users = users.where(F.col(C.COL_USER_IDX) < F.lit(result.sizes["n_users"]))
    return users


def generate_deep(ctx: FitContext, model_name: str, result: FitResult | None = None) -> Candidates:
    """Fit ``model_name`` on ``ctx`` (unless ``result`` holds its fit, e.g. from :func:`fit_deep_models`)
    and return its top-``ctx.n`` lists for ``ctx.target_users``."""
    lp = ctx.conf.deep.launch
    use_gpu = use_gpu_for(ctx)
    if result is None:
        result = fit(ctx.spark, model_name, ctx, use_gpu=use_gpu)
    recs = score_users(
        ctx.spark,
        result.model_path,
        scoring_users(model_name, ctx, result),
        ctx.seen,
        ctx.n,
        candidate_items(model_name, ctx),
        block_size=int(lp.score_block_size),
        use_gpu=use_gpu,
    )
    version = model_version(model_name, ctx.run_date, {**result.params, **result.sizes})
    artifacts: dict[str, DataFrame] = {}
    if model_name == C.ALGO_MULTVAE:
        all_users = features.scoring_frame(model_name, ctx.interactions, result.params)
        artifacts[USER_EMBEDDINGS] = embed_users(ctx.spark, result.model_path, all_users)
    return Candidates(recs, version, artifacts)


def use_gpu_for(ctx: FitContext) -> bool:
    """Train and score on GPUs: ``deep.launch.use_gpu`` or the job's ``--use-gpu``."""
    return bool(ctx.conf.deep.launch.use_gpu or ctx.use_gpu)


def fit_deep_models(ctx: FitContext, model_names: list[str]) -> dict[str, FitResult]:
    """Fit several deep models on ``ctx`` in one training launch (:func:`.launch.fit_many`);
    pass each result to :func:`generate_deep` to score it."""
    return fit_many(ctx.spark, model_names, ctx, use_gpu=use_gpu_for(ctx))


def generate_ncf(ctx: FitContext) -> Candidates:
    """NeuMF (He et al. 2017) lists."""
    return generate_deep(ctx, C.ALGO_NCF)


def generate_multvae(ctx: FitContext) -> Candidates:
    """Mult-VAE (Liang et al. 2018) lists, with the ``user_embeddings`` artifact."""
    return generate_deep(ctx, C.ALGO_MULTVAE)


def generate_sequence(ctx: FitContext) -> Candidates:
    """SASRec (Kang & McAuley 2018) next-item lists."""
    return generate_deep(ctx, C.ALGO_SEQUENCE)


def generate_gru(ctx: FitContext) -> Candidates:
    """GRU4Rec (Hidasi et al. 2016) next-item lists."""
    return generate_deep(ctx, C.ALGO_GRU)


def generate_text(ctx: FitContext) -> Candidates:
    """Content-encoder lists (recent items' mean embedding against every catalog item)."""
    return generate_deep(ctx, C.ALGO_TEXT)


def generate_fusion(ctx: FitContext) -> Candidates:
    """Collaborative + content fusion lists (every catalog item, cold items included)."""
    return generate_deep(ctx, C.ALGO_FUSION)
