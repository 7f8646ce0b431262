"""The rating model: global mean + user bias + item bias + factors (a biased matrix factorisation).

Predicts an explicit rating as ``mu + b_u + b_i + p_u . q_i``, fitted in two steps on the
``(user_idx, item_idx, rating)`` rows that carry a rating:

1. **Regularised biases** (Koren 2008, the baseline predictor): ``mu`` is the mean rating; then
   ``rating.bias_iter`` alternating passes of ``b_i = sum(r - mu - b_u) / (rating.bias_reg_item + n_i)``
   and ``b_u = sum(r - mu - b_i) / (rating.bias_reg_user + n_u)``. Items and users with few ratings
   are shrunk towards the mean, which is what the item-mean baseline lacks.
2. **Factors on the residuals** ``r - mu - b_u - b_i``: Spark's explicit ALS (rank ``rating.rank``,
   ``rating.reg_param``, scaled per user/item by its number of ratings, i.e. ALS-WR). ``rank: 0``
   keeps the biases alone.

Predictions are clipped to the training ratings' range. A pair whose user or item has no rating in
training gets the terms it has (0 for the rest), so every held-out pair is predicted: RMSE is over
all of them, not over the ones a model happens to cover.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config.sections import RatingConf
from vidrec.models.base import model_version

log = logging.getLogger(__name__)

#: The model-version name of the rating model (``gold/model_metrics`` RMSE/MAE rows of ``als``).
RATING_MODEL = "als-biased"

_BU, _BI, _RES = "_b_u", "_b_i", "_residual"


@dataclass
class RatingModel:
    """A fitted rating model (see the module docstring); ``factors`` is ``None`` with ``rank: 0``."""

    mu: float
    user_bias: DataFrame  # (user_idx, _b_u)
    item_bias: DataFrame  # (item_idx, _b_i)
    factors: ALSModel | None
    low: float
    high: float

    def predict(self, pairs: DataFrame) -> DataFrame:
        """``pairs`` (``user_idx``, ``item_idx``, any other columns) with a ``prediction`` column."""
        out = pairs.join(self.user_bias, C.COL_USER_IDX, "left").join(self.item_bias, C.COL_ITEM_IDX, "left")
        base = F.lit(self.mu) + F.coalesce(F.col(_BU), F.lit(0.0)) + F.coalesce(F.col(_BI), F.lit(0.0))
        if self.factors is not None:
            out = _with_dot(out, self.factors)
            base = base + F.coalesce(F.col("_dot"), F.lit(0.0))
        pred = F.least(F.greatest(base, F.lit(self.low)), F.lit(self.high))
        return out.withColumn("prediction", pred.cast("double")).drop(_BU, _BI, "_dot")

    def release(self) -> None:
        """Unpersist the bias tables."""
        self.user_bias.unpersist()
        self.item_bias.unpersist()


def _with_dot(pairs: DataFrame, model: ALSModel) -> DataFrame:
    """``pairs`` with ``_dot`` = the factor dot product (null when the user or item has no factors)."""
    users = model.userFactors.select(F.col("id").alias(C.COL_USER_IDX), F.col("features").alias("_pu"))
    items = model.itemFactors.select(F.col("id").alias(C.COL_ITEM_IDX), F.col("features").alias("_qi"))
    dot = F.aggregate(
        F.zip_with("_pu", "_qi", lambda a, b: a * b), F.lit(0.0).cast("double"), lambda acc, x: acc + x
    )
    return (
        pairs.join(users, C.COL_USER_IDX, "left")
        .join(items, C.COL_ITEM_IDX, "left")
        .withColumn("_dot", dot)
        .drop("_pu", "_qi")
    )


def rating_rows(interactions: DataFrame) -> DataFrame:
    """``(user_idx, item_idx, rating)`` of the interactions that carry an explicit rating."""
    return interactions.where(F.col(C.COL_RATING).isNotNull()).select(
        C.COL_USER_IDX, C.COL_ITEM_IDX, F.col(C.COL_RATING).cast("double").alias(C.COL_RATING)
    )


def fit_biases(ratings: DataFrame, params: RatingConf) -> tuple[float, DataFrame, DataFrame]:
    """``(mu, user_bias, item_bias)`` of ``ratings`` (``user_idx, item_idx, rating``), regularised.

    ``params.bias_iter`` alternating passes, item biases first (see the module docstring). Each pass's
    bias tables are local checkpoints (small: one row per user or item), so the plans stay flat: with
    cached frames each pass nested the previous plans, whose text (Spark prints it per query) ran a
    3 GB driver out of heap in a unit test.
    """
    row = ratings.agg(F.avg(C.COL_RATING)).first()
    assert row is not None, "an aggregate without grouping returns one row"
    if row[0] is None:
        raise ValueError("rating model: no training row carries a rating")
    mu = float(row[0])
    r = ratings.select(C.COL_USER_IDX, C.COL_ITEM_IDX, (F.col(C.COL_RATING) - F.lit(mu)).alias("_r")).cache()
    user_bias = r.select(C.COL_USER_IDX).distinct().withColumn(_BU, F.lit(0.0))
    item_bias: DataFrame | None = None
    for _ in range(params.bias_iter):
        fresh_items = (
            r.join(user_bias, C.COL_USER_IDX)
            .groupBy(C.COL_ITEM_IDX)
            .agg(
                (F.sum(F.col("_r") - F.col(_BU)) / (F.count(F.lit(1)) + F.lit(params.bias_reg_item))).alias(
                    _BI
                )
            )
            .localCheckpoint()
        )
        fresh_users = (
            r.join(fresh_items, C.COL_ITEM_IDX)
            .groupBy(C.COL_USER_IDX)
            .agg(
                (F.sum(F.col("_r") - F.col(_BI)) / (F.count(F.lit(1)) + F.lit(params.bias_reg_user))).alias(
                    _BU
                )
            )
            .localCheckpoint()
        )
        user_bias, item_bias = fresh_users, fresh_items
    r.unpersist()
    assert item_bias is not None, "RatingConf checks bias_iter >= 1"
    return mu, user_bias, item_bias


def fit_rating_model(interactions: DataFrame, params: RatingConf, num_blocks: int = 4) -> RatingModel:
    """Fit the rating model on the rated rows of ``interactions`` (see the module docstring).

    Raises
    ------
    ValueError
        When no row carries a rating.
    """
    start = time.perf_counter()
    ratings = rating_rows(interactions).cache()
    n = ratings.count()
    if n == 0:
        ratings.unpersist()
        raise ValueError("rating model: no training row carries a rating")
    bounds = ratings.agg(F.min(C.COL_RATING), F.max(C.COL_RATING)).first()
    assert bounds is not None, "an aggregate without grouping returns one row"
    mu, user_bias, item_bias = fit_biases(ratings, params)
    factors = None
    if params.rank > 0:
        residuals = (
            ratings.join(user_bias, C.COL_USER_IDX)
            .join(item_bias, C.COL_ITEM_IDX)
            .select(
                C.COL_USER_IDX,
                C.COL_ITEM_IDX,
                (F.col(C.COL_RATING) - F.lit(mu) - F.col(_BU) - F.col(_BI)).cast("float").alias(_RES),
            )
            .repartition(num_blocks, C.COL_USER_IDX)
            .sortWithinPartitions(C.COL_USER_IDX, C.COL_ITEM_IDX)
        )
        factors = ALS(
            rank=params.rank,
            maxIter=params.max_iter,
            regParam=params.reg_param,
            implicitPrefs=False,
            seed=params.seed,
            userCol=C.COL_USER_IDX,
            itemCol=C.COL_ITEM_IDX,
            ratingCol=_RES,
            numUserBlocks=num_blocks,
            numItemBlocks=num_blocks,
        ).fit(residuals)
        factors.userFactors.count()
    ratings.unpersist()
    log.info(
        "rating model: mu %.3f, biases (reg item %.1f, user %.1f), rank-%d factors, %d ratings, %.1f s",
        mu,
        params.bias_reg_item,
        params.bias_reg_user,
        params.rank,
        n,
        time.perf_counter() - start,
    )
    return RatingModel(mu, user_bias, item_bias, factors, float(bounds[0]), float(bounds[1]))


def rating_model_version(run_date: str, params: RatingConf) -> str:
    """The model version of the rating model fitted on ``run_date`` with ``params``."""
    return model_version(RATING_MODEL, run_date, params)
